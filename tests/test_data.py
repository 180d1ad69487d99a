"""Tests of the input pipeline: digits builder, determinism, resume, eval coverage, multi-host,
image folders with bad files, and one-line errors for datasets that cannot be read."""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import logging
import os
import subprocess
import sys

import ml_dtypes
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from inception_jax.data import digits
from inception_jax.data import input_pipeline as ip
from inception_jax.data import sources
from inception_jax.data.source_base import Share, block_shuffle
from inception_jax.data import prepare
from inception_jax.tools import prepare as prepare_cli
from inception_jax.data import preprocessing
from inception_jax.errors import UserError
from inception_jax.config import schema
from inception_jax.models.inputs import normalize_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def digits_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  digits.ensure_prepared(data_dir)
  return data_dir


def make_config(data_dir, **overrides):
  """A whole training config (the pipeline reads its fields unchecked) on 16 px digits."""
  config = schema.base_config()
  config.update(dict(dataset='digits', data_dir=data_dir, image_size=16, eval_crop_fraction=1.0,
                     shuffle_buffer=2048, global_batch_size=64, eval_batch_size=64))
  config.update(overrides)
  return config


def plain(data_dir, **overrides):
  """No random augmentation: an example's image identifies it."""
  return make_config(data_dir, augment='resize', random_flip=False, **overrides)


def digest(image: np.ndarray) -> str:
  return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def eval_examples(config, process_index=0, process_count=1):
  """(number of batches, Counter of (image digest, label) of unmasked examples, mask total)."""
  batches = list(ip.create_eval_iterator(config, process_index=process_index,
                                         process_count=process_count))
  seen = collections.Counter()
  for b in batches:
    for image, label in zip(b['image'][b['mask']], b['label'][b['mask']]):
      seen[(digest(image), int(label))] += 1
  return len(batches), seen, sum(int(b['mask'].sum()) for b in batches)


# ----------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_stratified_and_disjoint(digits_dir):
  builder = digits.ensure_prepared(digits_dir)
  assert builder.info.splits['train'].num_examples == 1437
  assert builder.info.splits['validation'].num_examples == 360
  images, labels, train_idx, val_idx = digits._split_indices()
  assert len(set(train_idx) | set(val_idx)) == 1797 and not set(train_idx) & set(val_idx)
  counts = np.bincount(labels[val_idx], minlength=10)
  assert counts.min() >= 35 and counts.max() <= 37  # Stratified: ~36 per class.
  assert images.dtype == np.uint8 and images.max() == 255
  info = ip.get_dataset_info(make_config(digits_dir))
  assert (info.num_classes, info.num_train_examples, info.num_eval_examples) == (10, 1437, 360)
  assert info.image_channels == 1
  for split in ('train', 'validation'):
    ds = builder.as_dataset(split=split)
    labels = [int(ex['label']) for ex in ds.as_numpy_iterator()]
    assert sorted(set(labels)) == list(range(10))


def test_digits_build_is_idempotent(digits_dir):
  path = os.path.join(digits_dir, 'digits', '1.0.0')
  before = {f: os.path.getmtime(os.path.join(path, f)) for f in os.listdir(path)}
  builder = digits.ensure_prepared(digits_dir)
  assert builder.is_prepared()
  assert {f: os.path.getmtime(os.path.join(path, f)) for f in os.listdir(path)} == before


_QUIET_BUILD = r"""
import logging, sys
from tensorflow_datasets.core.utils import tqdm_utils
from inception_jax.data import digits
digits.ensure_prepared(sys.argv[1])
print('--- second call ---', flush=True)
digits.ensure_prepared(sys.argv[1])
# The TFDS settings the build changed are back as they were.
assert tqdm_utils._active is True and logging.getLogger('absl').level == logging.NOTSET
"""


@pytest.mark.slow  # spawns a Python process that builds the dataset
def test_first_digits_build_says_one_line_of_ours_and_the_second_nothing(tmp_path):
  """What a first `python train.py` shows of the build, in a log file (not a terminal): our line
  naming the directory; no TFDS download messages, warnings or progress bars."""
  data_dir = str(tmp_path / 'tfds')
  proc = subprocess.run(
      [sys.executable, '-c', _QUIET_BUILD, data_dir], capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2'))  # as every entry point
  assert proc.returncode == 0, proc.stderr
  output = proc.stdout + proc.stderr
  first, sep, second = proc.stdout.partition('--- second call ---\n')
  assert sep and second == '' and proc.stderr == '', output
  path = os.path.join(data_dir, 'digits', '1.0.0')
  assert first.splitlines() == ['building the bundled digits dataset (1,797 images from '
                                f'scikit-learn, no download) in {path}']
  for noise in ('Downloading', 'dataset_info.json', 'prepared to', '\x1b', '\r'):
    assert noise not in output, noise
  assert os.path.exists(os.path.join(path, 'dataset_info.json'))


@pytest.mark.slow  # spawns a Python process that imports TensorFlow
def test_importing_the_package_builds_nothing(tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path), PYTHONPATH=REPO)
  subprocess.run([sys.executable, '-c', 'import inception_jax.data.input_pipeline'],
                 check=True, env=env, capture_output=True, timeout=120)
  assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- train batches


@pytest.mark.parametrize('normalization,low,high', [
    ('inception', -1.0, 1.0),
    ('imagenet', -0.485 / 0.229, (1 - 0.406) / 0.225),
])
def test_train_batch_shapes_dtypes_and_range(digits_dir, normalization, low, high):
  """uint8 pixels leave the host; normalised on the device they span the normalisation's range."""
  config = make_config(digits_dir, normalization=normalization, image_size=24)
  batch = next(ip.create_train_iterator(config, process_index=0, process_count=1))
  assert batch['image'].shape == (64, 24, 24, 3) and batch['image'].dtype == np.uint8
  assert batch['label'].shape == (64,) and batch['label'].dtype == np.int32
  assert batch['image'].min() == 0 and batch['image'].max() == 255  # Full range.
  batch['image'] = np.asarray(normalize_images(batch['image'], normalization))
  assert batch['image'].min() >= low - 1e-5 and batch['image'].max() <= high + 1e-5
  assert batch['image'].min() < low + 0.1 and batch['image'].max() > high - 0.1
  assert set(batch['label'].tolist()) <= set(range(10))
  if normalization == 'inception':  # Grey-scale digits become RGB with equal channels.
    np.testing.assert_array_equal(batch['image'][..., 0], batch['image'][..., 2])


@pytest.mark.slow  # builds the train and eval pipelines in both precisions
def test_half_precision_batches_carry_bfloat16_images_equal_to_the_float32_ones(digits_dir):
  """The float path: half the bytes to the devices, and the same numbers (the model casts its
  input to bf16). uint8 batches are the same in both precisions."""
  assert ip.image_dtype(make_config(digits_dir, half_precision=True)) == np.uint8
  full = make_config(digits_dir, uint8_images=False)
  half = make_config(digits_dir, half_precision=True, uint8_images=False)
  assert ip.image_dtype(full) == np.float32 and ip.image_dtype(half) == ml_dtypes.bfloat16
  for create in (functools.partial(ip.create_train_iterator, start_step=3),
                 ip.create_eval_iterator):
    a = next(create(full, process_index=0, process_count=1))
    b = next(create(half, process_index=0, process_count=1))
    assert a['image'].dtype == np.float32 and b['image'].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(a['image'].astype(ml_dtypes.bfloat16), b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])


@pytest.mark.slow  # runs the input pipeline six times, past an epoch's end
def test_two_fresh_iterators_are_identical_and_resume_equals_uninterrupted(digits_dir):
  config = make_config(digits_dir)
  steps = ip.steps_per_epoch(config, process_count=1)
  assert steps == 1437 // 64
  n = steps + 5  # Crosses an epoch boundary.
  first = take(ip.create_train_iterator(config, process_index=0, process_count=1), n)
  second = take(ip.create_train_iterator(config, process_index=0, process_count=1), n)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  for start in (steps - 2, steps, steps + 2):  # Mid-epoch, at the boundary, in epoch 2.
    resumed = take(ip.create_train_iterator(config, start_step=start, process_index=0,
                                            process_count=1), n - start)
    for k, batch in enumerate(resumed, start):
      np.testing.assert_array_equal(batch['image'], first[k]['image'])
      np.testing.assert_array_equal(batch['label'], first[k]['label'])
  other_seed = next(ip.create_train_iterator(make_config(digits_dir, seed=1),
                                             process_index=0, process_count=1))
  assert not np.array_equal(other_seed['label'], first[0]['label'])


def test_epochs_have_fixed_boundaries_and_reshuffle(digits_dir):
  config = plain(digits_dir)
  steps = ip.steps_per_epoch(config, process_count=1)
  batches = take(ip.create_train_iterator(config, process_index=0, process_count=1), 2 * steps)
  epochs = [[digest(im) for b in batches[e * steps:(e + 1) * steps] for im in b['image']]
            for e in range(2)]
  for examples in epochs:  # Each epoch: distinct examples, the remainder dropped.
    assert len(set(examples)) == len(examples) == steps * 64
  assert epochs[0] != epochs[1]  # A new order...
  assert len(set(epochs[0]) & set(epochs[1])) > 1300  # ... of (nearly) the same examples.


def test_augmentation_depends_on_epoch(digits_dir):
  """The same example is cropped differently in different epochs (seed includes the epoch)."""
  config = make_config(digits_dir, shuffle_buffer=1)  # shuffle_buffer=1: no reshuffling.
  steps = ip.steps_per_epoch(config, process_count=1)
  batches = take(ip.create_train_iterator(config, process_index=0, process_count=1), steps + 1)
  np.testing.assert_array_equal(batches[0]['label'], batches[steps]['label'])
  assert not np.array_equal(batches[0]['image'], batches[steps]['image'])


def test_train_shares_of_two_processes_are_disjoint(digits_dir):
  config = plain(digits_dir)
  steps = ip.steps_per_epoch(config, process_count=2)
  assert steps == (1437 // 2) // 32
  per_process = []
  for index in range(2):
    it = ip.create_train_iterator(config, process_index=index, process_count=2)
    batches = take(it, steps)
    assert batches[0]['image'].shape[0] == 32
    per_process.append({digest(im) for b in batches for im in b['image']})
  assert len(per_process[0]) == len(per_process[1]) == steps * 32
  assert not per_process[0] & per_process[1]
  # The shares themselves (before batching) partition the split.
  source = sources.open_source(config)
  records = collections.Counter()
  for index in range(2):
    share = source.read('train', index, 2, drop_remainder=False)
    keys = [(bytes(ex['image']), int(ex['label'])) for ex in share.dataset.as_numpy_iterator()]
    assert len(keys) == share.size
    records.update(keys)
  whole = source.read('train', 0, 1, drop_remainder=False)
  assert records == collections.Counter(
      (bytes(ex['image']), int(ex['label'])) for ex in whole.dataset.as_numpy_iterator())


def test_batch_not_divisible_by_process_count_is_a_user_error(digits_dir):
  with pytest.raises(UserError, match='divisible'):
    ip.create_train_iterator(make_config(digits_dir, global_batch_size=63), process_index=0,
                             process_count=2)
  with pytest.raises(UserError, match='larger than the train split'):
    ip.create_train_iterator(make_config(digits_dir, global_batch_size=4096), process_index=0,
                             process_count=1)


# ----------------------------------------------------------------------------- evaluation


def _reference_eval_set(config):
  """Every eval example through the eval preprocessing, one by one, without the pipeline."""
  builder = digits.ensure_prepared(config.data_dir)
  seen = collections.Counter()
  for ex in builder.as_dataset(split='validation').as_numpy_iterator():
    image = preprocessing.pixels_for_eval(tf.constant(ex['image']), config).numpy()
    seen[(digest(image), int(ex['label']))] += 1
  return seen


def test_eval_covers_the_split_exactly_once(digits_dir):
  config = plain(digits_dir, eval_batch_size=64)  # 360 = 5 x 64 + 40.
  assert ip.num_eval_batches(config, process_count=1) == 6
  batches = list(ip.create_eval_iterator(config, process_index=0, process_count=1))
  assert len(batches) == 6
  assert all(b['image'].shape == (64, 16, 16, 3) and b['mask'].dtype == bool for b in batches)
  assert [int(b['mask'].sum()) for b in batches] == [64] * 5 + [40]
  assert not batches[-1]['image'][~batches[-1]['mask']].any()
  _, seen, total = eval_examples(config)
  assert total == 360
  assert seen == _reference_eval_set(config)


@pytest.mark.parametrize('eval_split,size', [('validation', 360), ('validation[:359]', 359)])
def test_eval_with_two_processes_covers_the_split_once(digits_dir, eval_split, size):
  config = plain(digits_dir, eval_batch_size=64, eval_split=eval_split)
  expected = ip.num_eval_batches(config, process_count=2)
  assert expected == 6  # ceil(180 / 32)
  union, total = collections.Counter(), 0
  for index in range(2):
    n, seen, masked = eval_examples(config, index, 2)
    assert n == expected
    union += seen
    total += masked
  assert total == size
  _, single, _ = eval_examples(config)
  assert union == single and sum(single.values()) == size


# ----------------------------------------------------------------------------- preprocessing


def _jpeg_bytes(array: np.ndarray, fmt='JPEG') -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt, quality=95)
  return buffer.getvalue()


def test_center_crop_window_is_the_central_fraction_of_the_shorter_side():
  window = preprocessing.center_crop_window(tf.constant([100, 80]), 0.875).numpy().tolist()
  assert window == [15, 5, 70, 70]
  assert preprocessing.center_crop_window(tf.constant([8, 8]), 1.0).numpy().tolist() == [0, 0, 8, 8]


def test_inception_crop_windows_respect_area_and_aspect_ranges():
  shape = tf.constant([120, 160])
  areas = []
  for i in range(200):
    y, x, h, w = preprocessing.inception_crop_window(shape, tf.constant([7, i])).numpy().tolist()
    assert 0 <= y and 0 <= x and y + h <= 120 and x + w <= 160
    area = h * w / (120 * 160)
    areas.append(area)
    assert 0.08 - 0.01 <= area <= 1.0
    assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05 or (h, w) == (120, 120)  # or centre fallback
  assert min(areas) < 0.2 and max(areas) > 0.7  # The whole range is used.
  again = preprocessing.inception_crop_window(shape, tf.constant([7, 3])).numpy()
  first = preprocessing.inception_crop_window(shape, tf.constant([7, 3])).numpy()
  np.testing.assert_array_equal(again, first)


def test_pad_and_crop_shifts_the_resized_image_by_at_most_the_padding():
  """Every view is the resized image translated by (dy, dx) within +-crop_padding, the uncovered
  border is zeros (the digits' background), and the seed decides the shift."""
  image = np.zeros((8, 8, 1), np.uint8)
  image[2:6, 3:5] = 255
  config = dict(image_size=32, augment='pad_and_crop', crop_padding=4, random_flip=False)
  base = preprocessing.preprocess_for_train(tf.constant(image), tf.constant([0, 0]),
                                            dict(config, augment='resize')).numpy()
  background = np.pad(base, ((4, 4), (4, 4), (0, 0)), constant_values=-1.0)  # 0 -> -1 (inception)
  shifts = set()
  for i in range(40):
    view = preprocessing.preprocess_for_train(tf.constant(image), tf.constant([3, i]),
                                              config).numpy()
    assert view.shape == (32, 32, 3)
    found = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
             if np.array_equal(background[4 - dy:36 - dy, 4 - dx:36 - dx], view)]
    assert len(found) == 1, i
    shifts.add(found[0])
  assert len(shifts) > 10  # the seed moves the window
  again = preprocessing.preprocess_for_train(tf.constant(image), tf.constant([3, 5]), config)
  first = preprocessing.preprocess_for_train(tf.constant(image), tf.constant([3, 5]), config)
  np.testing.assert_array_equal(again.numpy(), first.numpy())
  unshifted = preprocessing.preprocess_for_train(tf.constant(image), tf.constant([3, 5]),
                                                 dict(config, crop_padding=0)).numpy()
  np.testing.assert_array_equal(unshifted, base)


def test_jpeg_fast_path_matches_decoded_tensor_path():
  rng = np.random.default_rng(0)
  array = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
  array = np.asarray(Image.fromarray(array).resize((64, 48)))
  config = dict(image_size=32, eval_crop_fraction=0.875, normalization='inception')
  encoded = _jpeg_bytes(array)
  decoded = tf.io.decode_jpeg(encoded, channels=3)
  from_bytes = preprocessing.preprocess_for_eval(tf.constant(encoded), config).numpy()
  from_tensor = preprocessing.preprocess_for_eval(decoded, config).numpy()
  # decode_and_crop_jpeg may differ from decode-then-crop at chroma-block edges of the window.
  close = lambda a, b: np.abs(a - b).mean() < 0.01 and np.abs(a - b).max() < 0.3
  assert close(from_bytes, from_tensor)
  seed = tf.constant([1, 2])
  train_config = dict(config, augment='inception_crop', random_flip=True)
  a = preprocessing.preprocess_for_train(tf.constant(encoded), seed, train_config).numpy()
  b = preprocessing.preprocess_for_train(decoded, seed, train_config).numpy()
  assert close(a, b)
  png = preprocessing.preprocess_for_train(tf.constant(_jpeg_bytes(array, 'PNG')), seed,
                                           train_config).numpy()
  assert png.shape == (32, 32, 3)
  other = preprocessing.preprocess_for_train(decoded, tf.constant([1, 3]), train_config).numpy()
  assert not np.allclose(other, b)


# ----------------------------------------------------------------------------- image folders


def _write_folder(root, counts, bad=()):
  """root/<split>/<class>/i.{jpg,png}, with distinct images; ``bad`` = (relpath, bytes)."""
  rng = np.random.default_rng(1)
  for split, per_class in counts.items():
    for name in ('cat', 'dog'):
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for i in range(per_class):
        array = (rng.random((20 + i, 24, 3)) * 255).astype(np.uint8)
        fmt, ext = (('JPEG', 'jpg') if i % 2 else ('PNG', 'png'))
        with open(os.path.join(root, split, name, f'{i}.{ext}'), 'wb') as f:
          f.write(_jpeg_bytes(array, fmt))
  for relpath, data in bad:
    with open(os.path.join(root, relpath), 'wb') as f:
      f.write(data)


def test_image_folder_skips_and_counts_unreadable_files(tmp_path, caplog):
  root = str(tmp_path / 'images')
  good_jpeg = _jpeg_bytes(np.zeros((30, 30, 3), np.uint8))
  _write_folder(root, {'train': 6, 'val': 3}, bad=[
      ('train/cat/corrupt.jpg', b'\xff\xd8\xff\xe0' + os.urandom(300)),
      ('train/dog/notes.txt', b'not an image\n'),
      ('train/dog/truncated.jpg', good_jpeg[:len(good_jpeg) // 2]),
  ])
  config = plain(str(tmp_path / 'tfds'), dataset=f'folder:{root}', global_batch_size=4,
                 eval_batch_size=4, image_size=16, eval_crop_fraction=0.875)
  with caplog.at_level(logging.WARNING):
    info = ip.get_dataset_info(config)
  assert info.class_names == ('cat', 'dog') and info.num_classes == 2
  assert (info.num_train_examples, info.num_eval_examples, info.num_skipped_files) == (12, 6, 3)
  warnings = [r.getMessage() for r in caplog.records if 'skipped' in r.getMessage()]
  assert len(warnings) == 1 and 'skipped 3' in warnings[0] and root in warnings[0]
  # Training runs over the readable files only; labels come from the folder names.
  batches = take(ip.create_train_iterator(config, process_index=0, process_count=1), 7)
  assert all(b['image'].shape == (4, 16, 16, 3) for b in batches)
  epoch = [digest(im) for b in batches[:3] for im in b['image']]
  assert len(set(epoch)) == 12
  labels = np.concatenate([b['label'] for b in batches[:3]])
  assert sorted(labels.tolist()) == [0] * 6 + [1] * 6
  # Evaluation: 6 images, batches of 4 -> 2 batches, 6 real examples.
  n, seen, total = eval_examples(config)
  assert (n, total, sum(seen.values())) == (2, 6, 6)
  # Two processes: disjoint train shares and an exact eval cover.
  shares = [{digest(im) for b in take(ip.create_train_iterator(
      config, process_index=i, process_count=2), 3) for im in b['image']} for i in range(2)]
  assert len(shares[0]) == len(shares[1]) == 6 and not shares[0] & shares[1]
  union = collections.Counter()
  for i in range(2):
    _, part, _ = eval_examples(config, i, 2)
    union += part
  assert union == seen
  # Deterministic, and the scan is cached on disk.
  again = next(ip.create_train_iterator(config, process_index=0, process_count=1))
  np.testing.assert_array_equal(again['image'], batches[0]['image'])
  assert os.listdir(tmp_path / 'tfds' / 'image_folder_index')


@pytest.mark.parametrize('layout,match', [
    (None, 'does not exist'),
    ({}, 'no train/'),
    ({'train': 0, 'val': 0}, 'no readable images'),
])
def test_missing_or_empty_image_folder_is_a_user_error(tmp_path, layout, match):
  root = str(tmp_path / 'images')
  if layout is not None:
    os.makedirs(root)
    _write_folder(root, layout)
  with pytest.raises(UserError, match=match):
    ip.get_dataset_info(plain(str(tmp_path), dataset=f'folder:{root}'))


# ----------------------------------------------------------------------------- bad dataset names


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
  with pytest.raises(UserError) as e:
    ip.get_dataset_info(make_config(str(tmp_path), dataset='mnist'))
  message = str(e.value)
  assert '\n' not in message and 'not prepared' in message
  assert f'python -m inception_jax.tools.prepare --dataset mnist --data_dir {tmp_path}' in message


def test_unprepared_imagenet_names_the_manual_tarballs(tmp_path):
  with pytest.raises(UserError) as e:
    ip.create_train_iterator(make_config(str(tmp_path), dataset='imagenet2012'),
                             process_index=0, process_count=1)
  message = str(e.value)
  assert '\n' not in message
  for part in ('ILSVRC2012_img_train.tar', 'ILSVRC2012_img_val.tar',
               os.path.join(str(tmp_path), 'downloads', 'manual'), 'tfds build imagenet2012'):
    assert part in message
  with pytest.raises(UserError, match='ILSVRC2012_img_train.tar'):
    prepare.prepare('imagenet2012', str(tmp_path))


@pytest.mark.parametrize('name', ['no_such_dataset', 'folder:', 'mnist:99.0.0',
                                  'imagenet2012/no_such_config'])
def test_unknown_dataset_is_a_user_error_naming_the_options(tmp_path, name):
  with pytest.raises(UserError, match='folder:'):
    ip.get_dataset_info(make_config(str(tmp_path), dataset=name))


def test_prepare_cli_builds_digits(tmp_path, capsys):
  prepare_cli.main(['--dataset', 'digits', '--data_dir', str(tmp_path)])
  assert 'digits is prepared in' in capsys.readouterr().out
  assert digits.Digits(data_dir=str(tmp_path)).is_prepared()


def test_tfds_epochs_read_every_record_of_many_shards_once(digits_dir, tmp_path):
  """The ImageNet path: a new shard order per epoch, each record (after skip/take) once."""
  source = sources.open_source(make_config(digits_dir))
  whole = source.read('train', 0, 1, drop_remainder=False)
  records = list(tf.data.TFRecordDataset(whole.files[0]).as_numpy_iterator())
  shards = [records[i::3] for i in range(3)]
  names = []
  for i, shard in enumerate(shards):
    names.append(str(tmp_path / f'shard-{i}'))
    with tf.io.TFRecordWriter(names[-1]) as writer:
      for record in shard:
        writer.write(record)
  skips, takes = [5, 0, 2], [len(shards[0]) - 5, len(shards[1]), 100]
  share = Share(whole.dataset, sum(takes),
                files=(tf.constant(names), tf.constant(skips, tf.int64),
                       tf.constant(takes, tf.int64)))
  expected = collections.Counter()
  for shard, skip, n in zip(shards, skips, takes):
    for record in shard[skip:skip + n]:
      ex = tf.io.parse_single_example(record, {'image': tf.io.FixedLenFeature([], tf.string)})
      expected[ex['image'].numpy()] += 1
  seed = tf.constant(0, tf.int64)
  orders = []
  for epoch in range(2):
    ds = source.epoch(share, share.size, tf.constant(epoch, tf.int64), seed, shuffle_buffer=1)
    orders.append([ex['image'] for ex in ds.as_numpy_iterator()])
    assert collections.Counter(orders[-1]) == expected
  assert orders[0] != orders[1]  # shuffle_buffer=1: the difference is the shard order alone.


@pytest.mark.parametrize('overrides,match', [
    (dict(image_size=0), 'image_size'),
    (dict(image_size=32.5), 'image_size'),
    (dict(augment='mixup'), 'augment'),
    (dict(normalization='zscore'), 'normalization'),
    (dict(crop_area_range=(0.0, 1.0)), 'crop_area_range'),
    (dict(crop_area_range=(0.5, 1.5)), 'crop_area_range'),
    (dict(crop_area_range=0.5), 'crop_area_range'),
    (dict(aspect_ratio_range=(2.0, 1.0)), 'aspect_ratio_range'),
    (dict(eval_crop_fraction=0.0), 'eval_crop_fraction'),
    (dict(eval_crop_fraction=1.2), 'eval_crop_fraction'),
    (dict(shuffle_buffer=0), 'shuffle_buffer'),
    (dict(crop_padding=-1), 'crop_padding must be a non-negative integer'),
    (dict(seed='zero'), 'seed'),
    (dict(global_batch_size=0), 'global_batch_size'),
    (dict(dataset=''), 'dataset'),
])
def test_bad_pipeline_fields_are_one_line_user_errors(digits_dir, overrides, match):
  """The schema checks the pipeline's fields for every entry point, before any data is read."""
  config = make_config(digits_dir)
  for key, value in overrides.items():  # Bypass ConfigDict's type locking, as a bad flag would.
    with config.unlocked(), config.ignore_type():
      config[key] = value
  with pytest.raises(UserError, match=match) as e:
    schema.validate_config(config, check_model=False)
  assert '\n' not in str(e.value)


def test_unwritable_data_dir_for_digits_is_a_user_error(tmp_path):
  blocked = tmp_path / 'file'
  blocked.write_text('a file where a directory should be')
  with pytest.raises(UserError, match='writable'):
    ip.get_dataset_info(make_config(str(blocked / 'tfds')))


def test_block_shuffle_permutes_within_blocks_statelessly():
  ds = tf.data.Dataset.range(100).map(lambda i: {'x': i, 'y': -i})
  seed = tf.constant([3, 4], tf.int64)
  out = [(int(e['x']), int(e['y'])) for e in block_shuffle(ds, 32, seed).as_numpy_iterator()]
  xs = [x for x, _ in out]
  assert all(y == -x for x, y in out)  # Records stay whole.
  for start in range(0, 100, 32):
    assert sorted(xs[start:start + 32]) == list(range(start, min(start + 32, 100)))
  assert xs != list(range(100))
  again = [int(e['x']) for e in block_shuffle(ds, 32, seed).as_numpy_iterator()]
  assert again == xs
  other = [int(e['x']) for e in block_shuffle(ds, 32, seed + 1).as_numpy_iterator()]
  assert other != xs


@pytest.mark.slow  # runs the input pipeline twice
def test_tf_global_seed_does_not_change_the_data_order(digits_dir):
  config = make_config(digits_dir, shuffle_buffer=500)
  first = take(ip.create_train_iterator(config, process_index=0, process_count=1), 3)
  tf.random.set_seed(1234)
  try:
    second = take(ip.create_train_iterator(config, process_index=0, process_count=1), 3)
  finally:
    tf.random.set_seed(None)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a['image'], b['image'])
