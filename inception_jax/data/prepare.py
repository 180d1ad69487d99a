"""Prepares a TFDS dataset for training: ``python -m inception_jax.tools.prepare --dataset NAME``.

One command for every dataset the pipeline reads by name; it calls TFDS's
``download_and_prepare`` (``tfds build NAME --data_dir=DIR`` is equivalent). TFDS's progress bars
are drawn only when stderr is a terminal (a log file gets no escape codes).

ImageNet (``imagenet2012``) cannot be downloaded automatically: register at image-net.org, put
``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` in ``<data_dir>/downloads/manual/``,
then run ``python -m inception_jax.tools.prepare --dataset imagenet2012 --data_dir <data_dir>``
(about 150 GB of TFRecords; hours on a few cores). ``digits`` is built offline in a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from inception_jax.errors import UserError

IMAGENET_TARBALLS = ('ILSVRC2012_img_train.tar', 'ILSVRC2012_img_val.tar')


def prepare(dataset: str, data_dir: str | None = None) -> str:
  """Builds ``dataset`` into ``data_dir`` (idempotent); returns the prepared directory."""
  import tensorflow_datasets as tfds
  from inception_jax.data import digits
  from inception_jax.data.quiet import quiet_tfds

  if dataset.startswith('folder:'):
    raise UserError('image folders need no preparation: train with --config.dataset=folder:/path')
  if dataset == 'digits':
    return os.fspath(digits.ensure_prepared(data_dir).data_dir)
  try:
    with quiet_tfds():  # e.g. "Variant folder ... has no dataset_info.json" for a new build
      builder = tfds.builder(dataset, data_dir=data_dir)
      if builder.is_prepared():
        return os.fspath(builder.data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(f'unknown TFDS dataset {dataset!r}; see `tfds.list_builders()` for names'
                    ) from None
  manual_dir = os.path.join(os.fspath(builder.data_dir_root), 'downloads', 'manual')
  if dataset.split(':')[0].split('/')[0] == 'imagenet2012':
    missing = [t for t in IMAGENET_TARBALLS if not os.path.exists(os.path.join(manual_dir, t))]
    if missing:
      raise UserError(f'imagenet2012 needs a manual download: put {" and ".join(missing)} '
                      f'(from image-net.org) in {manual_dir}/ and run this command again')
  try:
    with quiet_tfds(progress=True, warnings=True), _without_test_split_warning():
      builder.download_and_prepare(  # hours for imagenet2012: bars on a terminal
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except Exception as e:  # Network, disk, manual files: report it as one line, not a traceback.
    detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise UserError(f'preparing {dataset!r} in {builder.data_dir_root} failed: {detail}') from e
  return os.fspath(builder.data_dir)


@contextlib.contextmanager
def _without_test_split_warning() -> Iterator[None]:
  """Hides the imagenet2012 builder's warning that ``ILSVRC2012_img_test.tar`` is missing: the
  test split has no labels, training and evaluation never read it, and README does not ask for
  it, so the warning would only send users to download 13 GB for nothing."""

  class _Filter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
      return 'test split not found' not in record.getMessage()

  logger, hide = logging.getLogger('absl'), _Filter()
  logger.addFilter(hide)
  try:
    yield
  finally:
    logger.removeFilter(hide)
