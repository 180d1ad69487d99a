"""The one XLA:CPU setting this package changes, applied when it is imported.

jaxlib 0.10 hands convolutions to YNNPACK by default (``--xla_cpu_experimental_ynn_fusion_type``
defaults to ``individual_dot,individual_convolution,reduce``). For Inception's shapes XLA's own
(Eigen) convolutions are faster on the CPUs measured, in all three directions and most of all in
the kernel gradient, and both networks train and compile faster with them (benchmarks/RESULTS.md,
the package's XLA flag). YNNPACK keeps the matrix products and reductions (BatchNorm statistics,
max-pool windows), where it is the faster of the two, so only ``individual_convolution`` is taken
out.

XLA reads ``XLA_FLAGS`` once, when JAX starts its CPU backend, so the flag is appended at import
of ``inception_jax``, before any computation. It is left alone when

* ``XLA_FLAGS`` already names ``--xla_cpu_experimental_ynn_fusion_type`` (the user's choice wins);
* ``INCEPTION_JAX_XLA_DEFAULTS=0`` is set (XLA's own defaults, e.g. to compare);
* jaxlib is older than 0.10.2 (an unknown flag or value aborts the process; older versions were
  not measured);
* JAX's backends are already running (then it could no longer take effect; a warning says so).

No number changes beyond float rounding: both libraries compute the same convolution.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import sys
import warnings
from typing import MutableMapping

YNN_FLAG = '--xla_cpu_experimental_ynn_fusion_type'
DEFAULT_FLAGS = (f'{YNN_FLAG}=-individual_convolution',)
OPT_OUT_ENV = 'INCEPTION_JAX_XLA_DEFAULTS'
MIN_JAXLIB = (0, 10, 2)


def _version_tuple(version: str) -> tuple[int, ...]:
  parts = []
  for piece in version.split('.')[:3]:
    digits = re.match(r'\d+', piece)
    parts.append(int(digits.group()) if digits else 0)
  return tuple(parts)


@functools.lru_cache(maxsize=None)
def jaxlib_version() -> tuple[int, ...]:
  try:
    return _version_tuple(importlib.metadata.version('jaxlib'))
  except importlib.metadata.PackageNotFoundError:
    return (0,)


def flags_to_add(xla_flags: str, jaxlib: tuple[int, ...], opt_out: str | None = None) -> list[str]:
  """The flags :func:`apply` would append to an ``XLA_FLAGS`` of ``xla_flags``."""
  if (opt_out or '').strip().lower() in ('0', 'false', 'off', 'no') or tuple(jaxlib) < MIN_JAXLIB:
    return []
  return [flag for flag in DEFAULT_FLAGS if flag.split('=')[0] not in xla_flags]


def _backends_started() -> bool:
  if 'jax' not in sys.modules:
    return False
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):
    return False


def apply(environ: MutableMapping[str, str] = os.environ) -> list[str]:
  """Appends :data:`DEFAULT_FLAGS` to ``XLA_FLAGS`` (see the module docstring); returns them."""
  add = flags_to_add(environ.get('XLA_FLAGS', ''), jaxlib_version(), environ.get(OPT_OUT_ENV))
  if not add:
    return []
  if _backends_started():
    warnings.warn(
        'JAX started its backends before inception_jax was imported, so XLA:CPU keeps YNNPACK '
        'convolutions (slower here; see inception_jax/xla_flags.py). Import inception_jax '
        f'first, or set XLA_FLAGS="{" ".join(add)}".', stacklevel=3)
    return []
  environ['XLA_FLAGS'] = ' '.join(filter(None, [environ.get('XLA_FLAGS', ''), *add]))
  return add

