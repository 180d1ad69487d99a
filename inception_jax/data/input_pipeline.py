"""tf.data input pipelines for training and evaluation (tfds datasets and image folders).

Public API (what the training loop codes against)::

  info = get_dataset_info(config)                    # DatasetInfo: classes, split sizes, ...
  steps_per_epoch(config, process_count=None)        # training steps in one epoch
  it = create_train_iterator(config, start_step=0)   # infinite
  next(it) == {'image': [local_batch, S, S, 3], 'label': int32 [local_batch]}
  image_dtype(config)                                # float32, or bfloat16 with half_precision
  num_eval_batches(config, process_count=None)       # the same on every process
  for batch in create_eval_iterator(config):         # one pass over the eval split
    batch == {'image': ..., 'label': ..., 'mask': bool [local_eval_batch]}

``config`` is a whole, checked training config (the fields of ``schema.base_config``, passed
through ``schema.validate_config`` by the entry points); the pipeline reads its fields directly.
``local_batch = global_batch_size // process_count`` (and likewise ``eval_batch_size``); both
must divide (``schema.local_batch_size``). ``process_index`` / ``process_count`` default to
``jax.process_index()`` / ``jax.process_count()``; each process reads only its own share of a
split.

Datasets (``config.dataset``):
  * ``digits``: scikit-learn's bundled 8x8 digits as a TFDS dataset (``digits.py``), built into
    ``config.data_dir`` on first use, offline.
  * any TFDS image-classification name (``imagenet2012``, ``cifar10``, ``mnist``, ...), read
    from ``config.data_dir``; an unprepared one raises ``UserError`` saying how to prepare it
    (``python -m inception_jax.tools.prepare --dataset NAME --data_dir DIR``).
  * ``folder:/path``: class sub-folders of images under ``/path/train`` and ``/path/validation``
    (or ``/path/val``); labels are the sorted sub-folder names of ``train``. Every file is
    test-decoded once (cached under ``<data_dir>/image_folder_index``); unreadable files are
    skipped and counted in one warning line.

Determinism (the contract of ARCHITECTURE.md): training batch ``step`` is a pure function of
``(config.seed, step, process_index, process_count)`` and the data. An epoch has
``steps_per_epoch`` full batches (the remainder is dropped, so epoch boundaries are fixed).
Epoch ``e`` shuffles with stateless seeds derived from ``(seed, e)`` only (TF's global seed
plays no part). TFDS (TFRecord): the share's shards in a new order, interleaved 16 at a time
record by record, then blocks of ``shuffle_buffer`` records each permuted (TFDS already shuffled
the records across shards when it built the dataset). Image folders: a full permutation of the
file list. The epoch then numbers its examples ``0, 1, ...``; example ``i`` of epoch ``e`` is
augmented with stateless random ops seeded from ``(seed, process_index, e, i)``, so the
parallel ``map`` is bit-identical to a serial one. Resuming at ``start_step`` starts at epoch
``start_step // steps_per_epoch`` and skips that epoch's first whole batches as raw records,
before decoding anything (so a resume reads, but does not decode, up to one epoch of this
process's records).

Evaluation covers the split exactly once: each process pads its share with masked examples
(``mask`` False, zero image, label 0) up to ``num_eval_batches`` full batches, so all processes
yield the same number of batches and ``sum(mask)`` over processes equals the split size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Iterator, Sequence

from absl import logging
import ml_dtypes
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from inception_jax.data import digits as digits_lib
from inception_jax.data import preprocessing
from inception_jax.data.quiet import quiet_tfds
from inception_jax.errors import UserError
from inception_jax.config import schema

# TensorFlow is only the input pipeline: it must never take GPU memory from JAX.
try:
  tf.config.set_visible_devices([], 'GPU')
except (RuntimeError, ValueError):  # Already initialised; tensorflow-cpu has no GPUs anyway.
  pass

FOLDER_PREFIX = 'folder:'
DATASET_NAMING_HELP = schema.DATASET_NAMING_HELP
_IMAGENET_NAMES = ('imagenet2012', 'imagenet2012_subset', 'imagenet_resized')
_MAX_EPOCHS = 2**40  # "Infinite" epoch counter for the train dataset.


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the model and the loop need to know about a dataset.

  Attributes:
    name: ``config.dataset`` as given.
    num_classes: size of the label space (``num_classes`` of the model).
    num_train_examples: examples in the train split (all processes; before dropping any).
    num_eval_examples: examples in the eval split; evaluation covers each exactly once.
    class_names: human-readable label names, index = label.
    image_channels: channels as stored (1 for digits/MNIST); the pipeline always emits 3.
    train_split, eval_split: the split names actually read.
    num_skipped_files: unreadable files skipped in an image folder (0 for TFDS).
  """
  name: str
  num_classes: int
  num_train_examples: int
  num_eval_examples: int
  class_names: tuple[str, ...]
  image_channels: int | None = 3
  train_split: str = 'train'
  eval_split: str = 'validation'
  num_skipped_files: int = 0


# ----------------------------------------------------------------------------- config helpers


def _processes(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # Only when the caller did not say: keeps this module usable without devices.
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  return int(process_index), int(process_count)


def _process_count(process_count: int | None) -> int:
  if process_count is None:
    import jax
    process_count = jax.process_count()
  return int(process_count)


def _seed(config: Any) -> int:
  return int(config.seed) % (2**63)


def image_dtype(config: Any) -> np.dtype:
  """The dtype batches carry their images in: the model's compute dtype.

  With ``half_precision`` the model casts its input to bfloat16 before the first convolution, so
  bfloat16 images give the same numbers at half the bytes to copy to the devices (the Flax
  ImageNet example does the same); otherwise float32.
  """
  return np.dtype(ml_dtypes.bfloat16 if config.half_precision else np.float32)


def _even_share(n: int, index: int, count: int, drop_remainder: bool) -> tuple[int, int]:
  """[start, end) of share ``index`` of ``n`` items: the same arithmetic as ``tfds.even_splits``."""
  per = n // count
  start, end = per * index, per * (index + 1)
  if not drop_remainder:
    rem = n % count
    start += min(index, rem)
    end += min(index + 1, rem)
  return start, end


def _max_share(n: int, count: int) -> int:
  return -(-n // count)


# ----------------------------------------------------------------------------- sources


def _epoch_seeds(seed: tf.Tensor, epoch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Two independent stateless seeds [2] of an epoch: (file/list order, block shuffle)."""
  seeds = tf.random.experimental.stateless_split(
      tf.stack([seed, tf.cast(epoch, tf.int64)]), num=2, alg='philox')
  return seeds[0], seeds[1]


def block_shuffle(ds: tf.data.Dataset, block: int, seed: tf.Tensor) -> tf.data.Dataset:
  """Permutes each run of ``block`` consecutive elements with a stateless permutation.

  Unlike ``Dataset.shuffle``, whose seed is combined with TF's global seed (so a stray
  ``tf.random.set_seed`` elsewhere would change the data order), this depends on ``seed``
  alone. The next block is read in the background while the current one is consumed. Blocks
  at least as large as the epoch make it a uniform permutation of the epoch.
  """
  if block <= 1:
    return ds
  if not all(spec.shape.is_fully_defined() for spec in tf.nest.flatten(ds.element_spec)):
    # Variable-shape records cannot be batched into a block: fall back to tf.data's buffer.
    shuffle_seed = tf.random.stateless_uniform([], seed=seed, minval=None, maxval=None,
                                               dtype=tf.int64, alg='philox')
    return ds.shuffle(block, seed=shuffle_seed, reshuffle_each_iteration=False)

  def permute(index, records):
    n = tf.shape(tf.nest.flatten(records)[0], out_type=tf.int64)[0]
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n), seed=tf.random.experimental.stateless_fold_in(seed, index, alg='philox'),
        alg='philox')
    return tf.nest.map_structure(lambda x: tf.gather(x, perm), records)

  return ds.batch(block).enumerate().map(permute).prefetch(1).unbatch()


@dataclasses.dataclass(frozen=True)
class _Share:
  """One process's part of a split: records in a fixed order, plus what ``epoch`` reshuffles.

  TFRecord-backed TFDS shares keep their file instructions (file, skip, take) so that each
  epoch can visit the files in a new order; image folders keep their path and label lists.
  """
  dataset: tf.data.Dataset
  size: int
  paths: tf.Tensor | None = None
  labels: tf.Tensor | None = None
  files: tuple[tf.Tensor, tf.Tensor, tf.Tensor] | None = None  # filename, skip, take


class _Source:
  """A dataset: split sizes and per-process record streams of {'image', 'label'}.

  ``image`` is encoded bytes (tf.string) or a decoded uint8 tensor; preprocessing accepts both.
  """
  info: DatasetInfo

  def read(self, split: str, process_index: int, process_count: int, *,
           drop_remainder: bool) -> _Share:
    """This process's share of ``split`` in a fixed order."""
    raise NotImplementedError

  def epoch(self, share: _Share, size: int, epoch: tf.Tensor,
            seed: tf.Tensor, shuffle_buffer: int) -> tf.data.Dataset:
    """One shuffled pass over ``share`` for ``epoch`` (a scalar int64 tensor)."""
    _, shuffle_seed = _epoch_seeds(seed, epoch)
    return block_shuffle(share.dataset, min(shuffle_buffer, size), shuffle_seed)


def _unprepared_message(name: str, builder: tfds.core.DatasetBuilder) -> str:
  data_dir = os.fspath(builder.data_dir_root)
  prepare = f'python -m inception_jax.tools.prepare --dataset {name} --data_dir {data_dir}'
  if name.split(':')[0].split('/')[0] in _IMAGENET_NAMES:
    manual = os.path.join(data_dir, 'downloads', 'manual')
    return (f"dataset '{name}' is not prepared in {data_dir}: put ILSVRC2012_img_train.tar and "
            f'ILSVRC2012_img_val.tar in {manual}/ and run `{prepare}` '
            f'(or `tfds build {name} --data_dir={data_dir}`)')
  return (f"dataset '{name}' is not prepared in {data_dir}: run `{prepare}` "
          f'(or `tfds build {name} --data_dir={data_dir}`)')


class _TfdsSource(_Source):
  """A prepared TFDS dataset; images are read as encoded bytes and decoded by preprocessing."""

  def __init__(self, name: str, data_dir: str | None, train_split: str, eval_split: str | None):
    if name == 'digits':
      builder = digits_lib.ensure_prepared(data_dir)
    else:
      try:
        with quiet_tfds():  # e.g. "Variant folder ... has no dataset_info.json"
          builder = tfds.builder(name, data_dir=data_dir)
          prepared = builder.is_prepared()
      except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f'unknown dataset {name!r}: {DATASET_NAMING_HELP}') from None
      except (ValueError, KeyError, AssertionError, ImportError) as e:
        raise UserError(f'cannot open dataset {name!r} ({str(e).splitlines()[0]}): '
                        f'{DATASET_NAMING_HELP}') from None
      if not prepared:
        raise UserError(_unprepared_message(name, builder))
    self._builder = builder
    info = builder.info
    image_key, label_key = info.supervised_keys or ('image', 'label')
    features = info.features
    if (image_key not in features or label_key not in features
        or not isinstance(features[image_key], tfds.features.Image)
        or not isinstance(features[label_key], tfds.features.ClassLabel)):
      raise UserError(f"dataset {name!r} is not an image-classification dataset (it needs an "
                      "Image feature and a ClassLabel feature)")
    self._image_key, self._label_key = image_key, label_key
    image_feature = features[image_key]
    # Encoded uint8 images stay bytes so JPEGs take the decode-and-crop fast path.
    self._skip_decoding = image_feature.np_dtype == np.uint8
    splits = info.splits
    eval_split = eval_split or 'validation'
    if eval_split not in splits and eval_split == 'validation' and 'test' in splits:
      logging.info("dataset %s has no 'validation' split; evaluating on 'test'", name)
      eval_split = 'test'
    sizes = {}
    for split in (train_split, eval_split):
      try:
        sizes[split] = int(splits[split].num_examples)
      except (KeyError, ValueError, AssertionError) as e:
        raise UserError(f'dataset {name!r} has no split {split!r} ({str(e).splitlines()[0]}); '
                        f'its splits are {sorted(splits.keys())}') from None
    label_feature = features[label_key]
    shape = image_feature.shape
    self.info = DatasetInfo(
        name=name,
        num_classes=int(label_feature.num_classes),
        num_train_examples=sizes[train_split],
        num_eval_examples=sizes[eval_split],
        class_names=tuple(label_feature.names),
        image_channels=shape[-1] if shape else None,
        train_split=train_split,
        eval_split=eval_split)

  def read(self, split, process_index, process_count, *, drop_remainder):
    share = tfds.split_for_jax_process(split, process_index=process_index,
                                       process_count=process_count,
                                       drop_remainder=drop_remainder)
    size = int(self._builder.info.splits[share].num_examples)
    decoders = {self._image_key: tfds.decode.SkipDecoding()} if self._skip_decoding else None
    ds = self._builder.as_dataset(
        split=share, shuffle_files=False, decoders=decoders,
        read_config=tfds.ReadConfig(options=_options(), try_autocache=False,
                                    skip_prefetch=True))
    ds = ds.map(self._select)
    files = None
    if self._builder.info.file_format == tfds.core.FileFormat.TFRECORD:
      instructions = self._builder.info.splits[share].file_instructions
      files = (tf.constant([os.fspath(f.filename) for f in instructions], tf.string),
               tf.constant([f.skip for f in instructions], tf.int64),
               tf.constant([f.take for f in instructions], tf.int64))
    return _Share(ds, size, files=files)

  def _select(self, ex: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {'image': ex[self._image_key], 'label': tf.cast(ex[self._label_key], tf.int32)}

  def epoch(self, share, size, epoch, seed, shuffle_buffer):
    """Shards in a new order each epoch, interleaved record by record, then a block shuffle.

    TFDS already shuffled the records across shards when it built the dataset; this adds a
    different shard order and mixing per epoch (what ``shuffle_files=True`` gives, but as a
    function of ``(seed, epoch)`` rather than of an iterator's history).
    """
    if share.files is None:
      return super().epoch(share, size, epoch, seed, shuffle_buffer)
    filenames, skips, takes = share.files
    num_files = int(filenames.shape[0])
    order_seed, shuffle_seed = _epoch_seeds(seed, epoch)
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num_files, dtype=tf.int64), seed=order_seed, alg='philox')

    def read_file(i):
      records = tf.data.TFRecordDataset(tf.gather(filenames, i), buffer_size=1 << 20)
      return records.skip(tf.gather(skips, i)).take(tf.gather(takes, i))

    decoders = {self._image_key: tfds.decode.SkipDecoding()} if self._skip_decoding else None
    features = self._builder.info.features
    ds = tf.data.Dataset.from_tensor_slices(order).interleave(
        read_file, cycle_length=min(16, num_files), block_length=1,
        num_parallel_calls=min(16, num_files), deterministic=True)
    ds = ds.map(lambda r: self._select(features.deserialize_example(r, decoders=decoders)))
    return block_shuffle(ds, min(shuffle_buffer, size), shuffle_seed)


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
  ds = ds.map(check, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(log_warning=False)
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


class _FolderSource(_Source):
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
    start, end = _even_share(len(order), process_index, process_count, drop_remainder)
    order = order[start:end]
    paths = np.asarray(scan.paths, dtype=object)[order].astype(str)
    labels = np.asarray(scan.labels, dtype=np.int32)[order]
    return _Share(tf.data.Dataset.from_tensor_slices({'path': paths, 'label': labels}),
                  len(order), paths=tf.constant(paths), labels=tf.constant(labels))

  def epoch(self, share, size, epoch, seed, shuffle_buffer):
    # The file list is in memory, so shuffle it completely with a stateless permutation.
    del shuffle_buffer
    order_seed, _ = _epoch_seeds(seed, epoch)
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(size, dtype=tf.int64), seed=order_seed, alg='philox')
    return tf.data.Dataset.from_tensor_slices(perm).map(
        lambda i: {'path': tf.gather(share.paths, i), 'label': tf.gather(share.labels, i)})


def _source(config: Any) -> _Source:
  name = config.dataset.strip()
  data_dir = os.path.expanduser(config.data_dir) if config.data_dir else None
  train_split, eval_split = config.train_split, config.eval_split
  if name.startswith(FOLDER_PREFIX):
    return _FolderSource(name, data_dir, train_split, eval_split, _seed(config))
  return _TfdsSource(name, data_dir, train_split, eval_split)


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  return options


# ----------------------------------------------------------------------------- public API


def get_dataset_info(config: Any) -> DatasetInfo:
  """Dataset facts for building the model and the schedule (builds digits on first use)."""
  return _source(config).info


def steps_per_epoch(config: Any, *, process_count: int | None = None) -> int:
  """Full training batches per epoch: ``(num_train // process_count) // local_batch``."""
  process_count = _process_count(process_count)
  return schema.steps_per_epoch(config, get_dataset_info(config).num_train_examples,
                                process_count)


def num_eval_batches(config: Any, *, process_count: int | None = None) -> int:
  """Eval batches every process yields: enough for the largest share of the eval split."""
  process_count = _process_count(process_count)
  info = get_dataset_info(config)
  local = schema.local_batch_size(config, 'eval_batch_size', num_processes=process_count)
  return -(-_max_share(info.num_eval_examples, process_count) // local)


def _open_split(config: Any, which: str, process_index: int | None,
                process_count: int | None) -> tuple[_Source, _Share, tuple[int, int]]:
  """The source, this process's share of its ``which`` ('train' or 'eval') split, and the
  process (index, count). Training drops the remainder (every process, every epoch, the same
  number of full batches); evaluation keeps it (each example counted once)."""
  processes = _processes(process_index, process_count)
  source = _source(config)
  split = source.info.train_split if which == 'train' else source.info.eval_split
  return source, source.read(split, *processes, drop_remainder=which == 'train'), processes


def example_seed(seed: tf.Tensor, process_index: int, epoch: tf.Tensor,
                 index: tf.Tensor) -> tf.Tensor:
  """Stateless seed [2] for the augmentation of example ``index`` of ``epoch`` on a process."""
  s = tf.stack([tf.cast(seed, tf.int64), tf.constant(process_index, tf.int64)])
  s = tf.random.experimental.stateless_fold_in(s, tf.cast(epoch, tf.int64), alg='philox')
  return tf.random.experimental.stateless_fold_in(s, tf.cast(index, tf.int64), alg='philox')


def create_train_dataset(config: Any, *, start_step: int = 0,
                         process_index: int | None = None,
                         process_count: int | None = None) -> tf.data.Dataset:
  """The infinite training ``tf.data.Dataset`` behind :func:`create_train_iterator`."""
  source, share, (process_index, process_count) = _open_split(
      config, 'train', process_index, process_count)
  local = schema.local_batch_size(config, 'global_batch_size', num_processes=process_count)
  size = share.size
  steps = schema.steps_per_epoch(config, source.info.num_train_examples, process_count)
  if start_step < 0:
    raise ValueError(f'start_step must be >= 0, got {start_step}')
  start_epoch, start_batch = divmod(int(start_step), steps)
  seed = tf.constant(_seed(config), tf.int64)
  shuffle_buffer = int(config.shuffle_buffer)
  dtype = tf.as_dtype(image_dtype(config))

  def one_epoch(epoch):
    ds = source.epoch(share, size, epoch, seed, shuffle_buffer)
    ds = ds.take(steps * local).enumerate()
    skip = tf.where(tf.equal(epoch, start_epoch), tf.constant(start_batch * local, tf.int64),
                    tf.constant(0, tf.int64))
    return ds.skip(skip).map(lambda index, ex: (epoch, index, ex))

  ds = tf.data.Dataset.range(start_epoch, _MAX_EPOCHS).flat_map(one_epoch)

  def preprocess(epoch, index, ex):
    if 'path' in ex:
      ex = {'image': tf.io.read_file(ex['path']), 'label': ex['label']}
    image = preprocessing.preprocess_for_train(
        ex['image'], example_seed(seed, process_index, epoch, index), config)
    return {'image': tf.cast(image, dtype), 'label': tf.cast(ex['label'], tf.int32)}

  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def create_train_iterator(config: Any, *, start_step: int = 0,
                          process_index: int | None = None,
                          process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of this process's training batches, starting at batch ``start_step``.

  Yields ``{'image': [local_batch, S, S, 3], 'label': int32 [local_batch]}`` (images in
  :func:`image_dtype`: float32, or bfloat16 with ``half_precision``); batch k
  is the same whether reached by iterating from 0 or by starting at ``start_step=k``.
  """
  return iter(tfds.as_numpy(create_train_dataset(
      config, start_step=start_step, process_index=process_index, process_count=process_count)))


def create_eval_dataset(config: Any, *, process_index: int | None = None,
                        process_count: int | None = None,
                        views_fn: Callable[[tf.Tensor], tf.Tensor] | None = None
                        ) -> tf.data.Dataset:
  """The finite evaluation ``tf.data.Dataset`` behind :func:`create_eval_iterator`.

  ``views_fn(image) -> float32 [..., S, S, 3]`` replaces the centre-crop view
  (``preprocessing.preprocess_for_eval``); multi-crop evaluation passes its crops
  (``crops.make_views_fn``), and each example's ``image`` then has that shape.
  """
  source, share, (process_index, process_count) = _open_split(
      config, 'eval', process_index, process_count)
  local = schema.local_batch_size(config, 'eval_batch_size', num_processes=process_count)
  size = share.size
  num_batches = -(-_max_share(source.info.num_eval_examples, process_count) // local)
  dtype = tf.as_dtype(image_dtype(config))
  if views_fn is None:
    views_fn = lambda image: preprocessing.preprocess_for_eval(image, config)

  def preprocess(ex):
    if 'path' in ex:
      ex = {'image': tf.io.read_file(ex['path']), 'label': ex['label']}
    return {'image': tf.cast(views_fn(ex['image']), dtype),
            'label': tf.cast(ex['label'], tf.int32),
            'mask': tf.constant(True)}

  ds = share.dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  padding = tf.data.Dataset.from_tensors({
      'image': tf.zeros(ds.element_spec['image'].shape, dtype),
      'label': tf.constant(0, tf.int32),
      'mask': tf.constant(False)}).repeat(num_batches * local - size)
  ds = ds.concatenate(padding).batch(local, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def create_eval_iterator(config: Any, *, process_index: int | None = None,
                         process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """One pass over this process's share of the eval split, padded to ``num_eval_batches``.

  Yields ``{'image': [b, S, S, 3], 'label': int32 [b], 'mask': bool [b]}`` (images in
  :func:`image_dtype`) with
  ``b = eval_batch_size // process_count``; padded examples have ``mask`` False.
  """
  return iter(tfds.as_numpy(create_eval_dataset(
      config, process_index=process_index, process_count=process_count)))
