"""Examples from TFDS by name: a prepared dataset in ``data_dir``, or the bundled digits.

Opening checks what the pipeline relies on (an Image and a ClassLabel feature, the two splits)
and turns each way of failing into one ``UserError`` line: an unknown name lists the naming
options, an unprepared dataset says how to prepare it.
"""

from __future__ import annotations

import os

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from inception_jax.config import schema
from inception_jax.data import digits as digits_lib
from inception_jax.data.quiet import quiet_tfds
from inception_jax.data.source_base import (DatasetInfo, Share, Source, as_written, block_shuffle,
                                            dataset_options, epoch_seeds)
from inception_jax.errors import UserError

DATASET_NAMING_HELP = schema.DATASET_NAMING_HELP
_IMAGENET_NAMES = ('imagenet2012', 'imagenet2012_subset', 'imagenet_resized')


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


class TfdsSource(Source):
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
        read_config=tfds.ReadConfig(options=dataset_options(), try_autocache=False,
                                    skip_prefetch=True))
    ds = ds.map(as_written(self._select))
    files = None
    if self._builder.info.file_format == tfds.core.FileFormat.TFRECORD:
      instructions = self._builder.info.splits[share].file_instructions
      files = (tf.constant([os.fspath(f.filename) for f in instructions], tf.string),
               tf.constant([f.skip for f in instructions], tf.int64),
               tf.constant([f.take for f in instructions], tf.int64))
    return Share(ds, size, files=files)

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
    order_seed, shuffle_seed = epoch_seeds(seed, epoch)
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num_files, dtype=tf.int64), seed=order_seed, alg='philox')

    def read_file(i):
      records = tf.data.TFRecordDataset(tf.gather(filenames, i), buffer_size=1 << 20)
      return records.skip(tf.gather(skips, i)).take(tf.gather(takes, i))

    decoders = {self._image_key: tfds.decode.SkipDecoding()} if self._skip_decoding else None
    features = self._builder.info.features
    ds = tf.data.Dataset.from_tensor_slices(order).interleave(
        as_written(read_file), cycle_length=min(16, num_files), block_length=1,
        num_parallel_calls=min(16, num_files), deterministic=True)
    ds = ds.map(as_written(
        lambda r: self._select(features.deserialize_example(r, decoders=decoders))))
    return block_shuffle(ds, min(shuffle_buffer, size), shuffle_seed)
