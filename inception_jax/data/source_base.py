"""What a source of examples is: its facts, one process's share of a split, and epoch shuffles.

A source (``tfds_source``, ``folder_source``) reads a split in a fixed order for one process and
reshuffles it per epoch with stateless seeds derived from ``(seed, epoch)`` only, so that
training batches are a pure function of the seed, the step and the process (the determinism
contract in ``input_pipeline``). TF's global seed plays no part.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

# TensorFlow is only the input pipeline: it must never take GPU memory from JAX.
try:
  tf.config.set_visible_devices([], 'GPU')
except (RuntimeError, ValueError):  # Already initialised; tensorflow-cpu has no GPUs anyway.
  pass


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


def even_share(n: int, index: int, count: int, drop_remainder: bool) -> tuple[int, int]:
  """[start, end) of share ``index`` of ``n`` items: the same arithmetic as ``tfds.even_splits``."""
  per = n // count
  start, end = per * index, per * (index + 1)
  if not drop_remainder:
    rem = n % count
    start += min(index, rem)
    end += min(index + 1, rem)
  return start, end


def max_share(n: int, count: int) -> int:
  """Items in the largest share of ``n`` split ``count`` ways."""
  return -(-n // count)


def epoch_seeds(seed: tf.Tensor, epoch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
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

  return ds.batch(block).enumerate().map(as_written(permute)).prefetch(1).unbatch()


@dataclasses.dataclass(frozen=True)
class Share:
  """One process's part of a split: records in a fixed order, plus what ``epoch`` reshuffles.

  TFRecord-backed TFDS shares keep their file instructions (file, skip, take) so that each
  epoch can visit the files in a new order; image folders keep their path and label lists.
  """
  dataset: tf.data.Dataset
  size: int
  paths: tf.Tensor | None = None
  labels: tf.Tensor | None = None
  files: tuple[tf.Tensor, tf.Tensor, tf.Tensor] | None = None  # filename, skip, take


class Source:
  """A dataset: split sizes and per-process record streams of {'image', 'label'}.

  ``image`` is encoded bytes (tf.string) or a decoded uint8 tensor; preprocessing accepts both.
  """
  info: DatasetInfo

  def read(self, split: str, process_index: int, process_count: int, *,
           drop_remainder: bool) -> Share:
    """This process's share of ``split`` in a fixed order."""
    raise NotImplementedError

  def epoch(self, share: Share, size: int, epoch: tf.Tensor,
            seed: tf.Tensor, shuffle_buffer: int) -> tf.data.Dataset:
    """One shuffled pass over ``share`` for ``epoch`` (a scalar int64 tensor)."""
    _, shuffle_seed = epoch_seeds(seed, epoch)
    return block_shuffle(share.dataset, min(shuffle_buffer, size), shuffle_seed)


def as_written(fn):
  """``fn`` for ``Dataset.map`` (and ``flat_map``, ``interleave``) traced as written, without
  AutoGraph: tf.data otherwise rewrites every map function and each function it calls (TFDS's
  feature decoding, the preprocessing) from its source, seconds of work whenever a pipeline is
  built. The pipeline's functions branch with ``tf.cond`` and loop in Python only over Python
  values, so AutoGraph has nothing to convert in them."""
  return tf.autograph.experimental.do_not_convert(fn)


def dataset_options() -> tf.data.Options:
  """Options of every stream: a deterministic order, whatever the parallelism."""
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  return options
