"""TFDS builder of scikit-learn's bundled handwritten digits: the offline default dataset.

`sklearn.datasets.load_digits` ships 1,797 real 8x8 grey-scale scans of handwritten digits (UCI
"Optical Recognition of Handwritten Digits", 43 writers, values 0..16, 10 classes) inside the
scikit-learn wheel, so a quick start can train on real data with no download. Wrapping it as a TFDS
``GeneratorBasedBuilder`` sends it through exactly the same tfds/tf.data code path as ImageNet.

Features: ``image`` uint8 [8, 8, 1] (0..16 scaled to 0..255 and rounded), ``label`` ClassLabel(10).

Splits (fixed, stratified by class): ``train`` 1,437 and ``validation`` 360 examples, from
``sklearn.model_selection.train_test_split(..., test_size=360, stratify=labels, random_state=0)``.
The split depends only on the bundled data and ``SPLIT_RANDOM_STATE``; changing either is a new
dataset version.

Defining the class registers the name ``digits`` with TFDS; nothing is built on import.
:func:`ensure_prepared` builds it (about a second, offline, idempotent) into a ``data_dir``, saying
so in one line instead of TFDS's download messages, warnings and progress bars.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from inception_jax.data.quiet import quiet_tfds
from inception_jax.errors import UserError

NUM_CLASSES = 10
NUM_TRAIN_EXAMPLES = 1437
NUM_VALIDATION_EXAMPLES = 360
SPLIT_RANDOM_STATE = 0


def _split_indices() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Returns (images uint8 [N, 8, 8], labels [N], train_idx, validation_idx)."""
  # Imported here so that importing this module stays cheap.
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split

  digits = load_digits()
  images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
  labels = digits.target.astype(np.int64)
  indices = np.arange(len(labels))
  train_idx, val_idx = train_test_split(
      indices, test_size=NUM_VALIDATION_EXAMPLES, stratify=labels,
      random_state=SPLIT_RANDOM_STATE)
  return images, labels, np.sort(train_idx), np.sort(val_idx)


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Fixed stratified 1,437 / 360 split (random_state=0).'}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    # TFDS's default looks the module up through `importlib_resources`, which not every
    # environment has; this file's own path is what it would find.
    return epath.Path(__file__)

  # TFDS prints "Downloading and preparing dataset Unknown size ..." and "Dataset digits downloaded
  # and prepared to ..." for every build; nothing is downloaded here, and ensure_prepared says
  # what happens in a line of its own.
  def _log_download_bytes(self) -> None:
    pass

  def _log_download_done(self) -> None:
    pass

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=(
            'Handwritten digits bundled with scikit-learn (UCI Optical Recognition of '
            'Handwritten Digits test set): 8x8 grey-scale, 10 classes.'),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(8, 8, 1), dtype=np.uint8,
                                         encoding_format='png'),
            'label': tfds.features.ClassLabel(names=[str(i) for i in range(NUM_CLASSES)]),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits',
        citation=(
            '@misc{alpaydin1998optical, author={Alpaydin, E. and Kaynak, C.}, '
            'title={Optical Recognition of Handwritten Digits}, year={1998}, '
            'howpublished={UCI Machine Learning Repository}}'),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download: the data ships with scikit-learn.
    images, labels, train_idx, val_idx = _split_indices()
    return {
        'train': self._generate_examples(images, labels, train_idx),
        'validation': self._generate_examples(images, labels, val_idx),
    }

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray,
                         indices: np.ndarray) -> Iterator[tuple[int, dict]]:
    for i in indices:
      yield int(i), {'image': images[i][..., None], 'label': int(labels[i])}


@contextlib.contextmanager
def _file_lock(path: str):
  """An exclusive advisory lock so concurrent processes build the dataset once."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  try:
    import fcntl
  except ImportError:  # Not POSIX: no locking, TFDS's atomic rename still protects the data.
    yield
    return
  with open(path, 'a') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def ensure_prepared(data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """Builds the dataset into ``data_dir`` unless it is already there; returns the builder.

  Safe to call from several processes at once (a file lock serialises the build). Prints one line
  when it builds, nothing otherwise.
  """
  with quiet_tfds():
    builder = Digits(data_dir=data_dir)
    if builder.is_prepared():
      return builder
    root = os.fspath(builder.data_dir_root)
    try:
      with _file_lock(os.path.join(root, '.digits.lock')):
        builder = Digits(data_dir=data_dir)
        if not builder.is_prepared():
          count = NUM_TRAIN_EXAMPLES + NUM_VALIDATION_EXAMPLES
          print(f'building the bundled digits dataset ({count:,} images from scikit-learn, no '
                f'download) in {builder.data_dir}', flush=True)
          builder.download_and_prepare(
              download_config=tfds.download.DownloadConfig(try_download_gcs=False))
          builder = Digits(data_dir=data_dir)
    except OSError as e:
      raise UserError(f'cannot build the digits dataset in {root} ({e.strerror or e}); set '
                      'data_dir (--config.data_dir) to a writable directory') from None
  return builder
