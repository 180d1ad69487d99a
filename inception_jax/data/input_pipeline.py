"""tf.data input pipelines for training and evaluation (tfds datasets and image folders).

Public API (what the training loop codes against)::

  info = get_dataset_info(config)                    # DatasetInfo: classes, split sizes, ...
  steps_per_epoch(config, process_count=None)        # training steps in one epoch
  it = create_train_iterator(config, start_step=0)   # infinite
  next(it) == {'image': [local_batch, S, S, 3], 'label': int32 [local_batch]}
  image_dtype(config)                                # uint8 pixels (or normalised floats)
  num_eval_batches(config, process_count=None)       # the same on every process
  for batch in create_eval_iterator(config):         # one pass over the eval split
    batch == {'image': ..., 'label': ..., 'mask': bool [local_eval_batch]}

``config`` is a whole, checked training config (the fields of ``schema.base_config``, passed
through ``schema.validate_config`` by the entry points); the pipeline reads its fields directly.
``local_batch = global_batch_size // process_count`` (and likewise ``eval_batch_size``); both
must divide (``schema.local_batch_size``). ``process_index`` / ``process_count`` default to
``jax.process_index()`` / ``jax.process_count()``; each process reads only its own share of a
split.

Datasets (``config.dataset``; ``sources.open_source`` picks the module that reads them):
  * ``digits``: scikit-learn's bundled 8x8 digits as a TFDS dataset (``digits.py``), built into
    ``config.data_dir`` on first use, offline (``tfds_source``).
  * any TFDS image-classification name (``imagenet2012``, ``cifar10``, ``mnist``, ...), read
    from ``config.data_dir``; an unprepared one raises ``UserError`` saying how to prepare it
    (``python -m inception_jax.tools.prepare --dataset NAME --data_dir DIR``; ``tfds_source``).
  * ``folder:/path``: class sub-folders of images under ``/path/train`` and ``/path/validation``
    (or ``/path/val``); labels are the sorted sub-folder names of ``train``. Every file is
    test-decoded once (cached under ``<data_dir>/image_folder_index``); unreadable files are
    skipped and counted in one warning line (``folder_source``).

Determinism (the contract of ARCHITECTURE.md): training batch ``step`` is a pure function of
``(config.seed, step, process_index, process_count)`` and the data. An epoch has ``steps_per_epoch``
full batches (the remainder is dropped, so epoch boundaries are fixed). Epoch ``e`` shuffles with
stateless seeds derived from ``(seed, e)`` only (TF's global seed plays no part; each source's
``epoch``). TFDS (TFRecord): the share's shards in a new order, interleaved 16 at a time record by
record, then blocks of ``shuffle_buffer`` records each permuted (TFDS already shuffled the records
across shards when it built the dataset). Image folders: a full permutation of the file list. The
epoch then numbers its examples ``0, 1, ...``; example ``i`` of epoch ``e`` is augmented with
stateless random ops seeded from ``(seed, process_index, e, i)``, so the parallel ``map`` is
bit-identical to a serial one. Resuming at ``start_step`` starts at epoch ``start_step //
steps_per_epoch`` and skips that epoch's first whole batches as raw records, before decoding
anything (so a resume reads, but does not decode, up to one epoch of this process's records).

With ``config.data_service`` (a tf.data service, ``service.py``) the decoding and augmentation of
training examples run on its workers and only this process's *set* of examples per epoch keeps
the contract: batches ``[e * steps_per_epoch, (e + 1) * steps_per_epoch)`` hold exactly the
examples of local epoch ``e``, each once and bit-identical (same shuffle, same per-index
augmentation), but their order within the epoch depends on the workers' timing, so a run is not
bit-reproducible. A resume inside epoch ``e`` skips the examples the local pipeline would have
put in that epoch's first batches, not the ones the interrupted run saw: that one epoch may
repeat some examples and miss as many; later epochs are exact. Each process is its own job.

Evaluation covers the split exactly once: each process pads its share with masked examples
(``mask`` False, zero image, label 0) up to ``num_eval_batches`` full batches, so all processes
yield the same number of batches and ``sum(mask)`` over processes equals the split size.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import ml_dtypes
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from inception_jax.config import schema
from inception_jax.data import preprocessing
from inception_jax.data import service
from inception_jax.data import sources
from inception_jax.data.folder_source import FOLDER_PREFIX
from inception_jax.data.source_base import (DatasetInfo, Share, Source, as_written,
                                            dataset_options, max_share)

_MAX_EPOCHS = 2**40  # "Infinite" epoch counter for the train dataset.


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


def image_dtype(config: Any) -> np.dtype:
  """The dtype batches carry their images in.

  uint8 pixels by default (``config.uint8_images``): a quarter of float32's bytes to copy, and
  the normalisation runs on the device inside the jitted step
  (:func:`inception_jax.models.inputs.normalize_images`). With ``uint8_images=False`` the host
  normalises, in the model's compute dtype: bfloat16 with ``half_precision`` (the model casts its
  input to bfloat16 before the first convolution anyway), else float32.
  """
  if config.get('uint8_images', True):
    return np.dtype(np.uint8)
  return np.dtype(ml_dtypes.bfloat16 if config.half_precision else np.float32)


# ----------------------------------------------------------------------------- public API


def get_dataset_info(config: Any) -> DatasetInfo:
  """Dataset facts for building the model and the schedule (builds digits on first use)."""
  return sources.open_source(config).info


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
  return -(-max_share(info.num_eval_examples, process_count) // local)


def _open_split(config: Any, which: str, process_index: int | None,
                process_count: int | None) -> tuple[Source, Share, tuple[int, int]]:
  """The source, this process's share of its ``which`` ('train' or 'eval') split, and the
  process (index, count). Training drops the remainder (every process, every epoch, the same
  number of full batches); evaluation keeps it (each example counted once)."""
  processes = _processes(process_index, process_count)
  source = sources.open_source(config)
  split = source.info.train_split if which == 'train' else source.info.eval_split
  return source, source.read(split, *processes, drop_remainder=which == 'train'), processes


def example_seed(seed: tf.Tensor, process_index: int, epoch: tf.Tensor,
                 index: tf.Tensor) -> tf.Tensor:
  """Stateless seed [2] for the augmentation of example ``index`` of ``epoch`` on a process."""
  s = tf.stack([tf.cast(seed, tf.int64), tf.constant(process_index, tf.int64)])
  s = tf.random.experimental.stateless_fold_in(s, tf.cast(epoch, tf.int64), alg='philox')
  return tf.random.experimental.stateless_fold_in(s, tf.cast(index, tf.int64), alg='philox')


def _train_preprocess(config: Any, seed: tf.Tensor, process_index: int
                      ) -> Callable[[Any, tf.Tensor, dict], tuple[tf.Tensor, dict]]:
  """``(epoch, index, record) -> (index, {'image', 'label'})``: decoding and augmentation, the
  same wherever it runs (this process or a tf.data service worker)."""
  dtype = tf.as_dtype(image_dtype(config))
  view = (preprocessing.pixels_for_train if dtype == tf.uint8 else
          preprocessing.preprocess_for_train)

  def preprocess(epoch, index, ex):
    if 'path' in ex:
      ex = {'image': tf.io.read_file(ex['path']), 'label': ex['label']}
    image = view(ex['image'], example_seed(seed, process_index, epoch, index), config)
    return index, {'image': tf.cast(image, dtype), 'label': tf.cast(ex['label'], tf.int32)}

  return preprocess


@dataclasses.dataclass(frozen=True)
class _TrainShare:
  """This process's share of the training split and where a run starting at ``start_step`` is
  in it: what the local pipeline and the tf.data service path both start from."""
  source: Source
  share: Share
  process_index: int
  local: int           # this process's batch
  steps: int           # full batches per epoch
  start_epoch: int
  start_batch: int     # batches of start_epoch already trained on
  seed: tf.Tensor

  @classmethod
  def open(cls, config: Any, start_step: int, process_index: int | None,
           process_count: int | None) -> '_TrainShare':
    source, share, (process_index, process_count) = _open_split(
        config, 'train', process_index, process_count)
    local = schema.local_batch_size(config, 'global_batch_size', num_processes=process_count)
    steps = schema.steps_per_epoch(config, source.info.num_train_examples, process_count)
    if start_step < 0:
      raise ValueError(f'start_step must be >= 0, got {start_step}')
    start_epoch, start_batch = divmod(int(start_step), steps)
    return cls(source, share, process_index, local, steps, start_epoch, start_batch,
               tf.constant(sources.config_seed(config), tf.int64))

  def numbered_epoch(self, config: Any, epoch: tf.Tensor) -> tf.data.Dataset:
    """Epoch ``epoch``'s records, shuffled, cut to whole batches and numbered ``(index, ex)``."""
    ds = self.source.epoch(self.share, self.share.size, epoch, self.seed,
                           int(config.shuffle_buffer))
    return ds.take(self.steps * self.local).enumerate()


def create_train_dataset(config: Any, *, start_step: int = 0,
                         process_index: int | None = None,
                         process_count: int | None = None) -> tf.data.Dataset:
  """The infinite training ``tf.data.Dataset`` behind :func:`create_train_iterator`."""
  train = _TrainShare.open(config, start_step, process_index, process_count)

  def one_epoch(epoch):
    skip = tf.where(tf.equal(epoch, train.start_epoch),
                    tf.constant(train.start_batch * train.local, tf.int64),
                    tf.constant(0, tf.int64))
    ds = train.numbered_epoch(config, epoch).skip(skip)
    return ds.map(as_written(lambda index, ex: (epoch, index, ex)))

  ds = tf.data.Dataset.range(train.start_epoch, _MAX_EPOCHS).flat_map(as_written(one_epoch))
  preprocess = _train_preprocess(config, train.seed, train.process_index)
  ds = ds.map(as_written(lambda epoch, index, ex: preprocess(epoch, index, ex)[1]),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(train.local, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(dataset_options())


def create_train_iterator(config: Any, *, start_step: int = 0,
                          process_index: int | None = None,
                          process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Infinite iterator of this process's training batches, starting at batch ``start_step``.

  Yields ``{'image': [local_batch, S, S, 3], 'label': int32 [local_batch]}`` (images in
  :func:`image_dtype`: uint8 pixels by default); batch k
  is the same whether reached by iterating from 0 or by starting at ``start_step=k``. With
  ``config.data_service`` the batches come from the tf.data service (the guarantee above).
  """
  if config.get('data_service'):
    return _service_train_batches(config, start_step, process_index, process_count)
  return iter(tfds.as_numpy(create_train_dataset(
      config, start_step=start_step, process_index=process_index, process_count=process_count)))


def _service_train_batches(config: Any, start_step: int, process_index: int | None,
                           process_count: int | None) -> service.ServiceBatches:
  """The training batches decoded and augmented by ``config.data_service``'s workers."""
  service.probe(config.data_service)
  train = _TrainShare.open(config, start_step, process_index, process_count)
  preprocess = _train_preprocess(config, train.seed, train.process_index)

  def make_epoch(epoch: int) -> tf.data.Dataset:
    number = tf.constant(epoch, tf.int64)
    ds = train.numbered_epoch(config, number).skip(skip(epoch))
    ds = service.shard_hint(ds).map(as_written(lambda index, ex: preprocess(number, index, ex)),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.map(as_written(lambda index, ex: {'index': index, **ex})).batch(train.local)
    return ds.prefetch(tf.data.AUTOTUNE)

  def skip(epoch: int) -> int:
    return train.start_batch * train.local if epoch == train.start_epoch else 0

  return service.ServiceBatches(make_epoch, address=config.data_service,
                                start_epoch=train.start_epoch,
                                epoch_size=train.steps * train.local, skip=skip,
                                batch_size=train.local, process_index=train.process_index)


def create_eval_dataset(config: Any, *, process_index: int | None = None,
                        process_count: int | None = None,
                        views_fn: Callable[[tf.Tensor], tf.Tensor] | None = None
                        ) -> tf.data.Dataset:
  """The finite evaluation ``tf.data.Dataset`` behind :func:`create_eval_iterator`.

  ``views_fn(image) -> [..., S, S, 3]`` replaces the centre-crop view
  (``preprocessing.pixels_for_eval``, or ``preprocess_for_eval`` with ``uint8_images=False``);
  multi-crop evaluation passes its crops (``crops.make_views_fn``, which follows the same
  setting), and each example's ``image`` then has that shape.
  """
  source, share, (process_index, process_count) = _open_split(
      config, 'eval', process_index, process_count)
  local = schema.local_batch_size(config, 'eval_batch_size', num_processes=process_count)
  size = share.size
  num_batches = -(-max_share(source.info.num_eval_examples, process_count) // local)
  dtype = tf.as_dtype(image_dtype(config))
  if views_fn is None:
    view = (preprocessing.pixels_for_eval if dtype == tf.uint8 else
            preprocessing.preprocess_for_eval)
    views_fn = lambda image: view(image, config)

  def preprocess(ex):
    if 'path' in ex:
      ex = {'image': tf.io.read_file(ex['path']), 'label': ex['label']}
    return {'image': tf.cast(views_fn(ex['image']), dtype),
            'label': tf.cast(ex['label'], tf.int32),
            'mask': tf.constant(True)}

  ds = share.dataset.map(as_written(preprocess), num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True)
  padding = tf.data.Dataset.from_tensors({
      'image': tf.zeros(ds.element_spec['image'].shape, dtype),
      'label': tf.constant(0, tf.int32),
      'mask': tf.constant(False)}).repeat(num_batches * local - size)
  ds = ds.concatenate(padding).batch(local, drop_remainder=True)
  return ds.prefetch(tf.data.AUTOTUNE).with_options(dataset_options())


def create_eval_iterator(config: Any, *, process_index: int | None = None,
                         process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """One pass over this process's share of the eval split, padded to ``num_eval_batches``.

  Yields ``{'image': [b, S, S, 3], 'label': int32 [b], 'mask': bool [b]}`` (images in
  :func:`image_dtype`) with
  ``b = eval_batch_size // process_count``; padded examples have ``mask`` False.
  """
  return iter(tfds.as_numpy(create_eval_dataset(
      config, process_index=process_index, process_count=process_count)))


# What the rest of the code uses; FOLDER_PREFIX tells callers which names are image folders.
__all__ = ['FOLDER_PREFIX', 'DatasetInfo', 'create_eval_dataset', 'create_eval_iterator',
           'create_train_dataset', 'create_train_iterator', 'example_seed', 'get_dataset_info',
           'image_dtype', 'num_eval_batches', 'steps_per_epoch']
