"""Evaluation and prediction: crop geometry, whole-split coverage, EMA weights, both checkpoint
layouts through one loader, predict on the bundled images, and one-line errors for bad input.

Sizes are tiny so the file runs in well under a minute on two cores: a GoogLeNet (torchvision
layout) at 1/16 width and 16 px, whose weights are random numbers written straight into the
training system's checkpoint format (TrainState + Checkpointer + build_metadata) and the converter's
(``convert.save_converted``), so no training or initialisation program is compiled. Every
evaluation feeds 160 images per step (160 examples x 1 crop, or 16 x 10), so the evaluations share
one compiled program.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from inception_jax.data import crops
from inception_jax.inference import evaluation as evaluate
from inception_jax import models
from inception_jax.inference import prediction
from inception_jax.tools import predict
from inception_jax import progress as progress_lib
from inception_jax.inference import restore
from inception_jax.data import digits
from inception_jax.data import input_pipeline
from inception_jax.data import preprocessing
from inception_jax.models.inputs import normalize_images
from inception_jax import errors
from inception_jax.errors import UserError
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.config import schema
from inception_jax.training import state as state_lib
from _training_helpers import random_variables  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16
OVERRIDES = {'width_multiplier': 0.0625, 'aux_logits': False}
MODEL = 'googlenet_tv'


def _gradient_image(height: int, width: int) -> np.ndarray:
  """uint8 [H, W, 3] whose every pixel is distinct: R = 9 * row, G = 4 * column, B = 7."""
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([rows * 9, cols * 4, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


# ----------------------------------------------------------------------------- crop geometry


def test_scales_follow_the_paper_and_scale_with_the_input_size():
  assert crops.googlenet_scales(224) == (256, 288, 320, 352)
  assert crops.googlenet_scales(299) == (342, 384, 427, 470)
  assert crops.googlenet_scales(SIZE) == (18, 21, 23, 25)
  assert crops.ten_crop_side(224, 0.875) == 256 and crops.ten_crop_side(SIZE, 1.0) == SIZE


def test_ten_crop_is_corners_and_centre_then_mirrors():
  image = _gradient_image(20, 28)
  # Shorter side 20 = 16 / 0.8: the resize is the identity, so crops are plain slices.
  views = crops.ten_crop(tf.constant(image), SIZE, 0.8).numpy()
  assert views.shape == (10, SIZE, SIZE, 3) and views.dtype == np.float32
  expected = [image[0:16, 0:16], image[0:16, 12:28], image[4:20, 0:16], image[4:20, 12:28],
              image[2:18, 6:22]]
  for i, want in enumerate(expected):
    np.testing.assert_array_equal(views[i], want)
    np.testing.assert_array_equal(views[5 + i], want[:, ::-1])
  assert len({v.tobytes() for v in views}) == 10  # all ten differ on this image


def test_144_crops_geometry_portrait_and_landscape():
  portrait = _gradient_image(30, 18)  # shorter side 18 = the first scale: identity resize
  views = crops.googlenet_144_crop(tf.constant(portrait), SIZE).numpy()
  assert views.shape == (144, SIZE, SIZE, 3)
  for s, top in enumerate([0, 6, 12]):  # top / centre / bottom squares of 18 x 18
    square = portrait[top:top + 18]
    expected = [square[0:16, 0:16], square[0:16, 2:18], square[2:18, 0:16], square[2:18, 2:18],
                square[1:17, 1:17],
                tf.image.resize(square.astype(np.float32), [SIZE, SIZE], antialias=True).numpy()]
    for i, want in enumerate(expected):
      np.testing.assert_allclose(views[12 * s + i], want, atol=1e-4)
      np.testing.assert_allclose(views[12 * s + 6 + i], want[:, ::-1], atol=1e-4)
  landscape = np.ascontiguousarray(np.transpose(portrait, (1, 0, 2)))
  wide = crops.googlenet_144_crop(tf.constant(landscape), SIZE).numpy()
  np.testing.assert_array_equal(wide[12], landscape[:, 6:24][0:16, 0:16])  # centre square's TL
  # Later scales are real resizes (4 scales x 3 squares x 12 views): their first views differ.
  # (Views of different squares may coincide: a square's right corners can equal the next's left.)
  assert len({views[36 * scale].tobytes() for scale in range(4)}) == 4
  assert views[36:].shape == (108, SIZE, SIZE, 3)


@pytest.mark.parametrize('n', [1, 10, 144])
def test_views_fn_counts_sizes_and_normalises_encoded_images(n):
  png = tf.io.encode_png(_gradient_image(11, 23))
  config = {'image_size': SIZE, 'eval_crop_fraction': 0.875, 'normalization': 'inception'}
  views = tf.function(crops.make_views_fn(n, config))(png).numpy()
  assert views.shape == (n, SIZE, SIZE, 3) and views.dtype == np.uint8  # normalised on the device
  normalised = np.asarray(normalize_images(views, 'inception'))
  assert normalised.min() >= -1.0 and normalised.max() <= 1.0
  if n == 1:  # exactly the input pipeline's evaluation view
    np.testing.assert_array_equal(views[0], preprocessing.pixels_for_eval(png, config))


def test_without_random_flip_the_views_have_no_mirror_images():
  """random_flip=False (trained without mirror images): 10 crops become the 5 unmirrored ones,
  144 the 72 unmirrored ones, and the description's count is the number of views."""
  image = _gradient_image(20, 28)  # every pixel distinct: a view differs from its mirror image
  config = {'image_size': SIZE, 'eval_crop_fraction': 0.8, 'normalization': 'inception',
            'random_flip': False}
  views = crops.make_views_fn(10, config)(tf.constant(image)).numpy()
  unmirrored = preprocessing.to_pixels(crops.ten_crop(tf.constant(image), SIZE, 0.8)[:5]).numpy()
  assert views.shape == (5, SIZE, SIZE, 3) and crops.num_views(10, config) == 5
  np.testing.assert_array_equal(views, unmirrored)
  for view in views:
    assert not np.allclose(view, view[:, ::-1])
  assert crops.describe_views(10, config) == (
      '5 crops (4 corners + centre), no mirrors because config.random_flip=False')

  portrait = tf.constant(_gradient_image(30, 18))
  views = crops.googlenet_144_crop(portrait, SIZE, mirror=False).numpy()
  both = crops.googlenet_144_crop(portrait, SIZE).numpy()
  assert views.shape == (72, SIZE, SIZE, 3) and crops.num_views(144, config) == 72
  # The first 6 of every 12 views are the unmirrored ones, the next 6 their mirror images.
  unmirrored = both.reshape(12, 2, 6, SIZE, SIZE, 3)[:, 0].reshape(views.shape)
  np.testing.assert_allclose(views, unmirrored, atol=1e-4)
  assert crops.describe_views(144, config).startswith('72 crops (')
  assert crops.describe_views(144, dict(config, random_flip=True)).startswith('144 crops (')
  assert crops.describe_views(10, {}).startswith('10 crops (') and crops.num_views(1, config) == 1


def test_crop_protocol_must_be_1_10_or_144():
  for bad in (0, 5, 143, '10x', None, True, 10.5):
    with pytest.raises(UserError, match='1, 10 or 144'):
      crops.check_protocol(bad)
  assert crops.check_protocol('144') == 144


# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """A training workdir (EMA kept) and a converted directory of the same tiny model."""
  root = tmp_path_factory.mktemp('evaluate')
  model = models.create(MODEL, num_classes=10, **OVERRIDES)
  raw = random_variables(model, SIZE, seed=1)
  ema = random_variables(model, SIZE, seed=2)['params']

  config = schema.base_config()
  config.model = MODEL
  config.image_size = SIZE
  config.ema_decay = 0.999
  for k, v in OVERRIDES.items():
    config.model_overrides[k] = v
  host_state = jax.device_get(state_lib.TrainState(
      step=np.int32(7), params=raw['params'], batch_stats=raw['batch_stats'],
      opt_state=optax.sgd(0.1, momentum=0.9).init(raw['params']), ema_params=ema,
      rng=np.zeros(2, np.uint32), nonfinite_step=np.int32(-1), nonfinite_what=np.int32(0)))
  workdir = root / 'run'
  checkpointer = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(str(workdir)), async_save=False)
  checkpointer.save(host_state, ckpt_lib.build_metadata(config, host_state, num_classes=10,
                                                        total_steps=7))
  checkpointer.close()

  from inception_jax.convert import torchvision as convert  # pylint: disable=g-import-not-at-top
  meta = convert.conversion_metadata(MODEL, raw)
  meta.update(image_size=SIZE, eval_crop_fraction=0.8, model_overrides=OVERRIDES)
  converted = root / 'converted'
  convert.save_converted(str(converted), raw, meta)

  data_dir = str(root / 'tfds')
  eval_cfg = schema.base_config()  # dataset 'digits', normalization 'inception'
  eval_cfg.data_dir = data_dir
  eval_cfg.eval_batch_size = 160  # does not divide 360; 16 examples x 10 crops = 160 images too
  eval_cfg.eval_crop_fraction = 0.8
  return {'root': root, 'model': model, 'raw': raw, 'ema': ema, 'workdir': str(workdir),
          'converted': str(converted), 'config': eval_cfg, 'data_dir': data_dir}


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_one_loader_reads_both_layouts(setup):
  model, variables, meta = restore.load_for_inference(setup['workdir'])
  assert model == setup['model'] and meta['layout'] == 'training' and meta['weights'] == 'ema'
  assert meta['step'] == 7 and meta['checkpoint'].endswith(os.path.join('checkpoints', '7'))
  _assert_trees_equal(variables, {'params': setup['ema'],
                                  'batch_stats': setup['raw']['batch_stats']})
  # --noema, and the checkpoints/<step> directory itself.
  _, variables, meta = restore.load_for_inference(meta['checkpoint'], use_ema=False)
  assert meta['weights'] == 'params'
  _assert_trees_equal(variables, setup['raw'])

  model, variables, meta = restore.load_for_inference(setup['converted'])
  assert model == setup['model'] and meta['layout'] == 'converted' and meta['step'] == 0
  assert meta['weights'] == 'params' and meta['normalization'] == 'inception'
  _assert_trees_equal(variables, setup['raw'])


def _direct_one_crop(setup, params) -> tuple[int, int, int]:
  """(top-1 hits, top-5 hits, examples) computed from the training pipeline's own eval iterator."""
  config = setup['config'].copy_and_resolve_references()
  config.image_size = SIZE
  clf = evaluate.Classifier(setup['model'],
                            {'params': params, 'batch_stats': setup['raw']['batch_stats']})
  top1 = top5 = count = 0
  for batch in input_pipeline.create_eval_iterator(config, process_index=0, process_count=1):
    probs, mask = clf(batch['image']), batch['mask']
    top1 += int(np.sum(evaluate.topk_correct(probs, batch['label'], 1) & mask))
    top5 += int(np.sum(evaluate.topk_correct(probs, batch['label'], 5) & mask))
    count += int(mask.sum())
  return top1, top5, count


@pytest.mark.slow  # evaluates the whole split four times
def test_evaluate_one_crop_covers_the_split_once_with_ema_weights(setup):
  result = evaluate.evaluate(setup['config'], setup['workdir'], crops=1, log=lambda _: None)
  assert result['num_examples'] == 360 and result['crops'] == 1
  assert result['examples_per_batch'] == 160 and 360 % 160
  assert result['weights'] == 'ema' and result['step'] == 7 and result['image_size'] == SIZE
  top1, top5, count = _direct_one_crop(setup, setup['ema'])
  assert count == 360
  assert (result['top1'], result['top5']) == (top1 / 360, top5 / 360)
  # The raw parameters score differently, so the comparison above tells EMA from raw weights.
  raw_top1, raw_top5, _ = _direct_one_crop(setup, setup['raw']['params'])
  assert (raw_top1, raw_top5) != (top1, top5)

  converted = evaluate.evaluate(setup['config'], setup['converted'], crops=1,
                                log=lambda _: None)
  assert converted['num_examples'] == 360 and converted['layout'] == 'converted'
  assert (converted['top1'], converted['top5']) == (raw_top1 / 360, raw_top5 / 360)


@pytest.mark.slow  # evaluates the whole split, ten views per image, twice
def test_evaluate_ten_crops_averages_softmax_over_the_views(setup, tmp_path):
  result = evaluate.evaluate(setup['config'], setup['workdir'], crops=10, log=lambda _: None)
  assert result['num_examples'] == 360 and result['crops'] == 10
  assert result['examples_per_batch'] == 16 and 360 % 16
  # Independently: every validation record through the 10-crop views, softmax averaged.
  builder = digits.ensure_prepared(setup['data_dir'])
  records = list(tfds.as_numpy(builder.as_dataset(split='validation', shuffle_files=False)))
  assert len(records) == 360
  clf = evaluate.Classifier(setup['model'], {'params': setup['ema'],
                                             'batch_stats': setup['raw']['batch_stats']})
  views_fn = tf.function(crops.make_views_fn(10, {'image_size': SIZE, 'eval_crop_fraction': 0.8,
                                                  'normalization': 'inception'}))
  hits = np.zeros(2, int)
  for start in range(0, 360, 16):
    chunk = records[start:start + 16]
    views = np.zeros((16, 10, SIZE, SIZE, 3), np.uint8)  # the last chunk has 8: pad it
    views[:len(chunk)] = [views_fn(r['image']).numpy() for r in chunk]
    probs = clf(views.reshape(160, SIZE, SIZE, 3)).reshape(16, 10, -1).mean(axis=1)[:len(chunk)]
    labels = np.array([r['label'] for r in chunk])
    hits += [evaluate.topk_correct(probs, labels, k).sum() for k in (1, 5)]
  assert (result['top1'], result['top5']) == (hits[0] / 360, hits[1] / 360)
  line = evaluate.format_result(result)
  assert '10 crops' in line and '360 examples' in line and '\n' not in line
  evaluate.write_json(str(tmp_path / 'out' / 'r.json'), result)
  assert json.loads((tmp_path / 'out' / 'r.json').read_text())['num_examples'] == 360


def test_evaluate_without_random_flip_says_its_views_and_shows_progress(setup, monkeypatch):
  """The digits quick start's config (random_flip=False) with --crops=10: 5 views, said in the
  output, and progress lines with an ETA when stderr is not a terminal (a log file)."""
  from inception_jax import progress  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(progress, 'stderr_is_terminal', lambda: False)
  config = setup['config'].copy_and_resolve_references()
  config.random_flip = False
  lines = []
  result = evaluate.evaluate(config, setup['workdir'], crops=10, log=lines.append)
  # 32 examples x 5 views = 160 images per step: the program the other evaluations compiled.
  assert (result['crops'], result['views'], result['examples_per_batch']) == (10, 5, 32)
  assert result['num_examples'] == 360
  assert lines[0] == ('views: 5 crops (4 corners + centre), no mirrors because '
                      'config.random_flip=False')
  assert '5 crops' in evaluate.format_result(result)
  progress_lines = [l for l in lines if l.startswith('evaluating digits[validation]: ')]
  assert len(progress_lines) == 6, lines  # 12 batches: a line every 2
  assert progress_lines[0].startswith('evaluating digits[validation]: 2/12 batches (16%), ')
  assert 'ETA' in progress_lines[1] and progress_lines[-1].startswith(
      'evaluating digits[validation]: 12/12 batches (100%), ')
  assert not any('\r' in l or '\x1b' in l for l in lines)


def test_progress_lines_every_tenth_or_every_30_seconds():
  now = [0.0]
  lines = []
  bar = progress_lib.Progress(100, 'work', log=lines.append, terminal=False, clock=lambda: now[0])
  for i in range(1, 101):  # 1 s per item: a line every 10 items, none from the 30 s interval
    now[0] = float(i)
    bar.update()
  bar.close()
  assert len(lines) == 10
  assert lines[0] == 'work: 10/100 batches (10%), 10 s elapsed, ETA 1 min 30 s'
  assert lines[-1] == 'work: 100/100 batches (100%), 1 min 40 s elapsed'
  lines.clear()
  slow = progress_lib.Progress(1000, 'slow', log=lines.append, terminal=False,
                               clock=lambda: now[0])
  for _ in range(3):  # 40 s per item: a line for each, long before the 100th
    now[0] += 40.0
    slow.update()
  assert [l.split(', ')[0] for l in lines] == [f'slow: {i}/1000 batches (0%)' for i in (1, 2, 3)]
  assert lines[2].endswith('2 min 00 s elapsed, ETA 11 h 04 min')


# ----------------------------------------------------------------------------- predict


@pytest.mark.slow  # compiles and runs the classifier on the bundled images
def test_predict_prints_top5_for_the_bundled_images(setup, tmp_path, capsys):
  labels = tmp_path / 'labels.txt'
  labels.write_text(''.join(f'digit {i}\n' for i in range(10)))
  results = predict.main(['--checkpoint', setup['workdir'], '--example', '--labels', str(labels)])
  out = capsys.readouterr().out.splitlines()
  assert [r['image'] for r in results] == prediction.example_images()
  assert len(out) == 2 * 6 and out[0] == prediction.example_images()[0]
  for r in results:
    probs = [p for _, _, p in r['top']]
    assert len(r['top']) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert all(name == f'digit {index}' for index, name, _ in r['top'])
  index, name, p = results[0]['top'][0]
  assert out[1] == f'  1. {100 * p:6.2f}%  {name}  [{index}]'
  # The probabilities are the model's on the digit's 1-crop view (crop fraction 0.875: no config
  # in this hand-made workdir).
  with open(prediction.example_images()[0], 'rb') as f:
    png = tf.constant(f.read())
  view = crops.make_views_fn(1, {'image_size': SIZE, 'eval_crop_fraction': 0.875})(png).numpy()
  clf = evaluate.Classifier(setup['model'], {'params': setup['ema'],
                                             'batch_stats': setup['raw']['batch_stats']})
  probs = clf(np.concatenate([view, view]))[0]
  top = [(int(c), float(probs[c])) for c in np.argsort(-probs, kind='stable')[:5]]
  assert [(i, round(p, 5)) for i, _, p in results[0]['top']] == [(i, round(p, 5)) for i, p in top]


def test_class_names_sources():
  table = prediction.imagenet_classes()
  assert len(table) == 1000 and table[0] == ('n01440764', 'tench')
  synsets = [s for s, _ in table]
  assert synsets == sorted(synsets) and len(set(synsets)) == 1000
  assert prediction.class_names({'num_classes': 1000})[1] == 'goldfish'
  assert prediction.class_names({'num_classes': 10, 'dataset': 'digits'}) == [str(i) for i in range(10)]
  assert prediction.class_names({'num_classes': 3}) == ['0', '1', '2']
  assert prediction.class_names({'num_classes': 2, 'class_names': ['cat', 'dog']}) == ['cat', 'dog']


@pytest.mark.slow  # compiles and runs the classifier
def test_unreadable_images_are_skipped_and_all_unreadable_is_an_error(setup, tmp_path, capsys):
  junk = tmp_path / 'junk.jpg'
  junk.write_bytes(b'not an image at all')
  png = tmp_path / 'ok.png'
  Image.fromarray(_gradient_image(9, 13)).save(png)
  cut = tmp_path / 'cut.png'
  cut.write_bytes(png.read_bytes()[:40])
  warnings = []
  results = prediction.predict(
      setup['workdir'], [str(junk), str(png), str(tmp_path / 'missing.png'), str(cut)],
      warn=warnings.append)
  assert [('error' in r) for r in results] == [True, False, True, True]
  assert warnings == [
      f'warning: cannot read {junk} as an image (not a JPEG, PNG, GIF, BMP or WebP file); skipped',
      f'warning: cannot read {tmp_path / "missing.png"} as an image (No such file or directory); '
      'skipped',
      f'warning: cannot read {cut} as an image (damaged or truncated PNG data); skipped']
  assert len(results[1]['top']) == 5
  with pytest.raises(UserError, match='junk.jpg'):
    prediction.predict(setup['workdir'], [str(junk)], warn=warnings.append)


def test_predict_on_a_text_file_says_why_once(setup, tmp_path, capsys):
  notes = tmp_path / 'notes.txt'
  notes.write_text('shopping list\n')
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: predict.main(['--checkpoint', setup['workdir'], str(notes)]))
  assert e.value.code == 2
  captured = capsys.readouterr()
  assert captured.err == (f'error: cannot read {notes} as an image (not a JPEG, PNG, GIF, BMP or '
                          'WebP file)\n') and captured.out == ''
  # Several files, none readable: each reason once (warnings), then the error without them.
  warnings = []
  with pytest.raises(UserError, match=r'^none of the 2 images could be read \(reasons above\)$'):
    prediction.predict(setup['workdir'], [str(notes), str(notes)], warn=warnings.append)
  assert len(warnings) == 2 and all('[Op:' not in w and 'notes.txt' in w for w in warnings)


# ----------------------------------------------------------------------------- bad input


def _edit_metadata(step_dir, **changes):
  path = os.path.join(step_dir, ckpt_lib.METADATA, 'metadata')
  with open(path) as f:
    meta = json.load(f)
  meta.update(changes)
  with open(path, 'w') as f:
    json.dump(meta, f)


def test_bad_checkpoints_are_one_line_user_errors(setup, tmp_path, caplog):
  with pytest.raises(UserError, match='does not exist'):
    restore.load_for_inference(tmp_path / 'nowhere')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(UserError, match='holds no checkpoint'):
    restore.load_for_inference(tmp_path / 'empty')

  # A damaged newest step is skipped (warning) for an older good one; named explicitly, refused.
  work = tmp_path / 'work'
  shutil.copytree(setup['workdir'], work)
  steps = work / 'checkpoints'
  shutil.copytree(steps / '7', steps / '9')
  shutil.rmtree(steps / '9' / 'state')
  _, _, meta = restore.load_for_inference(work)
  assert meta['checkpoint'] == str(steps / '7')
  assert any('step 9' in r.getMessage() and 'damaged' in r.getMessage() for r in caplog.records)
  with pytest.raises(UserError, match='damaged.*state is missing'):
    restore.load_for_inference(steps / '9')

  # Metadata that does not describe the saved weights.
  for changes, pattern in (({'num_classes': 11}, 'does not match its metadata'),
                           ({'model': 'resnet'}, "unknown model 'resnet'"),
                           ({'model_overrides': {'width_multiplier': 0.125, 'aux_logits': False}},
                            'does not match its metadata'),
                           ({'architecture': 'sha256:' + '1' * 64}, 'architecture recorded'),
                           ({'format': 'other/9'}, 'unknown checkpoint format')):
    shutil.rmtree(steps / '9')
    shutil.copytree(steps / '7', steps / '9')
    _edit_metadata(steps / '9', **changes)
    with pytest.raises(UserError, match=pattern) as e:
      restore.load_for_inference(steps / '9')
    assert '\n' not in str(e.value)

  # Per-item checksums in the metadata (when the training system records them) are verified.
  good = {'params': ckpt_lib.state_checksum(setup['raw']['params']),
          'batch_stats': ckpt_lib.state_checksum(setup['raw']['batch_stats']),
          'ema_params': ckpt_lib.state_checksum(setup['ema'])}
  shutil.rmtree(steps / '9')
  shutil.copytree(steps / '7', steps / '9')
  _edit_metadata(steps / '9', checksums=good)
  assert restore.load_for_inference(steps / '9').meta['weights'] == 'ema'
  _edit_metadata(steps / '9', checksums=dict(good, ema_params=good['params']))
  with pytest.raises(UserError, match='damaged: checksum mismatch in ema_params'):
    restore.load_for_inference(steps / '9')

  # A converted checkpoint whose bytes do not match its checksum.
  conv = tmp_path / 'conv'
  shutil.copytree(setup['converted'], conv)
  _edit_metadata(conv / 'checkpoints' / '0', checksum='sha256:' + '0' * 64)
  with pytest.raises(UserError, match='checksum mismatch'):
    restore.load_for_inference(conv)


def test_bad_evaluation_and_prediction_input(setup, tmp_path):
  with pytest.raises(UserError, match='1, 10 or 144'):
    evaluate.evaluate(setup['config'], setup['workdir'], crops=12)
  with pytest.raises(UserError, match='too small for googlenet_tv: it needs at least 15 px'):
    evaluate.evaluate(setup['config'], setup['workdir'], image_size=8)
  with pytest.raises(UserError, match='1, 10 or 144'):
    predict.main(['--checkpoint', setup['workdir'], '--crops', '7', 'x.png'])
  with pytest.raises(UserError, match='too small'):
    predict.main(['--checkpoint', setup['workdir'], '--image_size', '12', '--example'])
  with pytest.raises(UserError, match='at least one IMAGE'):
    predict.main(['--checkpoint', setup['workdir']])
  with pytest.raises(UserError, match='required: --checkpoint'):
    predict.main(['x.png'])
  labels = tmp_path / 'labels.txt'
  labels.write_text('a\nb\n')
  with pytest.raises(UserError, match='has 2 lines, but the model has 10 classes'):
    predict.main(['--checkpoint', setup['workdir'], '--labels', str(labels), '--example'])


def test_evaluate_cli_reports_bad_flags_in_one_line():
  for args, pattern in ((['--crops=7'], '--crops must be 1, 10 or 144'),
                        (['--checkpoint=x', '--config.no_such_field=1'], 'no_such_field'),
                        (['--checkpoint=x', 'extra'], 'unexpected arguments')):
    proc = subprocess.run([sys.executable, '-m', 'inception_jax.tools.evaluate', *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
    lines = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and pattern in lines[0] and 'Traceback' not in proc.stderr
