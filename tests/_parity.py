"""The logit-parity measure shared by the weight-conversion and export tests.

Two float32 computations of one network (another framework's, or another lowering of ours) agree
when their largest logit difference is within ``RTOL`` of the largest reference logit: relative
to the logits' scale, since the absolute rounding grows with it.
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-5


def rel_err(actual, reference) -> float:
  """Largest absolute difference over the largest absolute reference value, in float64."""
  actual, reference = np.asarray(actual, np.float64), np.asarray(reference, np.float64)
  return float(np.max(np.abs(actual - reference)) / np.max(np.abs(reference)))
