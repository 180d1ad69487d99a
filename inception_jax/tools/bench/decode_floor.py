"""The decode-only floor of the input pipeline: the same files, the same windows, nothing else.

A recipe's preprocessing cannot run faster than decoding its JPEGs, so the pipeline's rate is
judged as a fraction of this loop's, measured in the same run. Floor: each example is read the
way the pipeline reads it and only the window the recipe decodes is decoded
(``preprocessing.decode_for_train`` / ``decode_for_eval``: ``decode_and_crop_jpeg`` of the same
Inception-crop window, drawn from the same seeds, or of the same centre window), in a tf.data
``map`` with the pipeline's parallelism, batching and options. A full decode would be the wrong
floor: the pipeline decodes only its window, which is cheaper. Not done: flip, resize,
normalisation, cast; each decoded window reduces to one pixel, so batches need no common shape.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from inception_jax.config import schema
from inception_jax.data import input_pipeline, preprocessing, sources
from inception_jax.data.source_base import as_written, dataset_options

DEFINITION = ('decode_and_crop_jpeg of the window the recipe decodes (same files, same seeds), '
              'read as the pipeline reads, in a tf.data map with the same parallelism and batch; '
              'no flip, resize, normalisation or cast')


def _bytes(ex: dict[str, tf.Tensor]) -> tf.Tensor:
  return tf.io.read_file(ex['path']) if 'path' in ex else ex['image']


def _finish(ds: tf.data.Dataset, batch: int) -> Iterator[dict[str, np.ndarray]]:
  ds = ds.batch(batch).prefetch(tf.data.AUTOTUNE).with_options(dataset_options())
  return iter(tfds.as_numpy(ds))


def train_iterator(config: Any) -> Iterator[dict[str, np.ndarray]]:
  """Training epoch 0's examples of process 0 of 1 (the pipeline's order and seeds), repeated."""
  source = sources.open_source(config)
  share = source.read(source.info.train_split, 0, 1, drop_remainder=True)
  seed = tf.constant(sources.config_seed(config), tf.int64)
  epoch = tf.constant(0, tf.int64)
  ds = source.epoch(share, share.size, epoch, seed, int(config.shuffle_buffer))

  def decode(index, ex):
    window = preprocessing.decode_for_train(
        _bytes(ex), input_pipeline.example_seed(seed, 0, epoch, index), config)
    return {'pixel': window[0, 0, 0], 'label': ex['label']}

  ds = ds.enumerate().repeat().map(as_written(decode), num_parallel_calls=tf.data.AUTOTUNE,
                                   deterministic=True)
  return _finish(ds, schema.local_batch_size(config, 'global_batch_size', num_processes=1))


def eval_iterator(config: Any) -> Iterator[dict[str, np.ndarray]]:
  """One pass over the evaluation split of process 0 of 1, unpadded."""
  source = sources.open_source(config)
  share = source.read(source.info.eval_split, 0, 1, drop_remainder=False)

  def decode(ex):
    window = preprocessing.decode_for_eval(_bytes(ex), config)
    return {'pixel': window[0, 0, 0], 'label': ex['label']}

  ds = share.dataset.map(as_written(decode), num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True)
  return _finish(ds, schema.local_batch_size(config, 'eval_batch_size', num_processes=1))
