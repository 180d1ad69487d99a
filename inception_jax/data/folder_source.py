"""Examples from an image folder: ``folder:/root`` with class sub-folders per split.

``/root/train/<class>/<image>`` and ``/root/validation`` (or ``/root/val``); labels are the sorted
sub-folder names of ``train``. Every file is test-decoded once (cached by content under
``<data_dir>/image_folder_index``), so a stray non-image costs one warning line, not a crash
mid-epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from inception_jax.data.source_base import (DatasetInfo, Share, Source, as_written, epoch_seeds,
                                            even_share)
from inception_jax.errors import UserError

FOLDER_PREFIX = 'folder:'


@dataclasses.dataclass(frozen=True)
class _FolderSplit:
  paths: tuple[str, ...]
  labels: tuple[int, ...]
  skipped: tuple[str, ...]


_FOLDER_SCANS: dict[str, _FolderSplit] = {}
_WARNED_FOLDERS: set[tuple[str, int]] = set()


def _list_images(split_dir: str, class_names: Sequence[str]) -> tuple[list[str], list[int]]:
  paths, labels = [], []
  for label, name in enumerate(class_names):
    class_dir = os.path.join(split_dir, name)
    if not os.path.isdir(class_dir):
      continue
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
      dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
      for filename in sorted(filenames):
        if not filename.startswith('.'):
          paths.append(os.path.join(dirpath, filename))
          labels.append(label)
  return paths, labels


def _readable_images(paths: Sequence[str]) -> set[int]:
  """Indices of ``paths`` that TensorFlow decodes, found by decoding each once in parallel."""
  if not paths:
    return set()

  def check(index, path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    tf.debugging.assert_positive(tf.size(image))
    return index

  ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths), dtype=np.int64), list(paths)))
  ds = ds.map(as_written(check), num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.ignore_errors(log_warning=False)
  return {int(i) for i in ds.as_numpy_iterator()}


def _scan_folder_split(split_dir: str, class_names: Sequence[str],
                       cache_dir: str | None) -> _FolderSplit:
  """Lists a split's images and drops (and counts) files that do not decode; cached by content."""
  paths, labels = _list_images(split_dir, class_names)
  signature = hashlib.sha256()
  for path, label in zip(paths, labels):
    st = os.stat(path)
    signature.update(f'{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
  key = signature.hexdigest()[:32]
  if key in _FOLDER_SCANS:
    return _FOLDER_SCANS[key]
  cache_path = os.path.join(cache_dir, f'{key}.json') if cache_dir else None
  good = None
  if cache_path and os.path.exists(cache_path):
    try:
      with open(cache_path) as f:
        good = set(json.load(f)['readable'])
    except (OSError, ValueError, KeyError):
      good = None
  if good is None:
    good = _readable_images(paths)
    if cache_path:
      try:  # Best effort: an unwritable data_dir only costs a rescan next time.
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f'{cache_path}.tmp{os.getpid()}'
        with open(tmp, 'w') as f:
          json.dump({'split_dir': split_dir, 'readable': sorted(good)}, f)
        os.replace(tmp, cache_path)
      except OSError:
        pass
  result = _FolderSplit(
      paths=tuple(p for i, p in enumerate(paths) if i in good),
      labels=tuple(l for i, l in enumerate(labels) if i in good),
      skipped=tuple(p for i, p in enumerate(paths) if i not in good))
  _FOLDER_SCANS[key] = result
  return result


class FolderSource(Source):
  """``folder:/root``: /root/train/<class>/<image>, /root/validation (or val)/<class>/<image>."""

  def __init__(self, spec: str, data_dir: str | None, train_split: str,
               eval_split: str | None, seed: int):
    root = os.path.expanduser(spec[len(FOLDER_PREFIX):])
    if not root:
      raise UserError("dataset 'folder:' needs a path, e.g. 'folder:/data/flowers'")
    if not os.path.isdir(root):
      raise UserError(f'image folder {root} does not exist; expected class sub-folders under '
                      f'{os.path.join(root, "train")} and {os.path.join(root, "validation")}')
    train_dir = os.path.join(root, train_split)
    eval_candidates = [eval_split] if eval_split else ['validation', 'val']
    if eval_split == 'validation':
      eval_candidates.append('val')
    eval_dir = next((os.path.join(root, c) for c in eval_candidates
                     if os.path.isdir(os.path.join(root, c))), None)
    if not os.path.isdir(train_dir):
      raise UserError(f'image folder {root} has no {train_split}/ sub-folder of class folders')
    if eval_dir is None:
      raise UserError(f'image folder {root} has no {" or ".join(eval_candidates)}/ sub-folder '
                      'of class folders')
    class_names = sorted(d for d in os.listdir(train_dir)
                         if not d.startswith('.') and os.path.isdir(os.path.join(train_dir, d)))
    if not class_names:
      raise UserError(f'image folder {train_dir} has no class sub-folders')
    unknown = sorted(set(d for d in os.listdir(eval_dir)
                         if not d.startswith('.') and os.path.isdir(os.path.join(eval_dir, d)))
                     - set(class_names))
    if unknown:
      raise UserError(f'{eval_dir} has class folders not in {train_dir}: {unknown[:5]}')
    cache_dir = None
    if data_dir or os.environ.get('TFDS_DATA_DIR'):
      cache_dir = os.path.join(data_dir or os.environ['TFDS_DATA_DIR'], 'image_folder_index')
    self._splits = {}
    skipped = []
    for split, split_dir in ((train_split, train_dir), ('eval', eval_dir)):
      scan = _scan_folder_split(split_dir, class_names, cache_dir)
      if not scan.paths:
        raise UserError(f'image folder {split_dir} has no readable images')
      self._splits[split] = scan
      skipped.extend(scan.skipped)
    if skipped and (root, len(skipped)) not in _WARNED_FOLDERS:
      _WARNED_FOLDERS.add((root, len(skipped)))  # Once per process, not per iterator.
      logging.warning('image folder %s: skipped %d unreadable or non-image file(s), e.g. %s',
                      root, len(skipped), skipped[0])
    self._seed = seed
    self._train_split = train_split
    self.info = DatasetInfo(
        name=spec,
        num_classes=len(class_names),
        num_train_examples=len(self._splits[train_split].paths),
        num_eval_examples=len(self._splits['eval'].paths),
        class_names=tuple(class_names),
        image_channels=3,
        train_split=train_split,
        eval_split=os.path.basename(eval_dir),
        num_skipped_files=len(skipped))

  def read(self, split, process_index, process_count, *, drop_remainder):
    scan = self._splits[self._train_split if split == self._train_split else 'eval']
    order = np.arange(len(scan.paths))
    if split == self._train_split:
      # Files are listed class by class; a fixed permutation (from the seed) before sharding
      # gives every process every class.
      order = np.random.default_rng(self._seed).permutation(len(order))
    start, end = even_share(len(order), process_index, process_count, drop_remainder)
    order = order[start:end]
    paths = np.asarray(scan.paths, dtype=object)[order].astype(str)
    labels = np.asarray(scan.labels, dtype=np.int32)[order]
    return Share(tf.data.Dataset.from_tensor_slices({'path': paths, 'label': labels}),
                  len(order), paths=tf.constant(paths), labels=tf.constant(labels))

  def epoch(self, share, size, epoch, seed, shuffle_buffer):
    # The file list is in memory, so shuffle it completely with a stateless permutation.
    del shuffle_buffer
    order_seed, _ = epoch_seeds(seed, epoch)
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(size, dtype=tf.int64), seed=order_seed, alg='philox')
    return tf.data.Dataset.from_tensor_slices(perm).map(as_written(
        lambda i: {'path': tf.gather(share.paths, i), 'label': tf.gather(share.labels, i)}))
