"""TFDS without its chatter while we open or build a dataset.

TFDS logs its own bookkeeping (e.g. "Variant folder ... has no dataset_info.json" for the version
directory it is about to create, "Reusing dataset ...") through absl, and draws nested tqdm bars
whose carriage returns and escape codes end up in log files. Our tools say what they do in lines
of their own instead.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from inception_jax.progress import stderr_is_terminal


@contextlib.contextmanager
def quiet_tfds(*, progress: bool = False, warnings: bool = False) -> Iterator[None]:
  """TFDS's absl logs hidden below ERROR (``warnings``: below WARNING), unless absl is at DEBUG
  (``--verbosity=1``), and its progress bars off (``progress``: kept, if enabled, when stderr is a
  terminal); both restored after."""
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top
  logger = logging.getLogger('absl')  # absl's logger, which TFDS's logging.info/warning go to
  level = logger.level
  if logger.getEffectiveLevel() > logging.DEBUG:
    logger.setLevel(max(level, logging.WARNING if warnings else logging.ERROR))
  bars = getattr(tqdm_utils, '_active', True)  # TFDS has no public getter for the setting
  tqdm_utils.display_progress_bar(bool(progress and bars and stderr_is_terminal()))
  try:
    yield
  finally:
    tqdm_utils.display_progress_bar(bars)
    logger.setLevel(level)
