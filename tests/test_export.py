"""Export for serving: the SavedModel runs without JAX and answers as the JAX model does.

A GoogLeNet (torchvision layout) at 1/16 width and 16 px, with random weights written straight
into a converted checkpoint (no training, no init program), is exported once; one subprocess, in
which JAX cannot be imported, loads the SavedModel and runs both signatures. JAX compiles two
programs (the logits of one batch, and ``predict``'s), TensorFlow three (two batch sizes, bytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
from PIL import Image
import pytest

from inception_jax import errors
from inception_jax import models
from inception_jax.convert import common as convert_common
from inception_jax.inference import export as export_lib
from inception_jax.inference import prediction
from inception_jax.inference import restore
from inception_jax.tools import export as export_tool
from _parity import RTOL  # pylint: disable=g-bad-import-order
from _training_helpers import random_variables  # pylint: disable=g-bad-import-order

SIZE = 16
MODEL = 'googlenet_tv'
OVERRIDES = {'width_multiplier': 0.0625, 'aux_logits': False}
NAMES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']


def _save(directory, model_name: str = MODEL, **meta) -> str:
  model = models.create(MODEL, num_classes=10, **OVERRIDES)
  meta = dict({'model': model_name, 'num_classes': 10, 'image_size': SIZE,
               'model_overrides': OVERRIDES, 'normalization': 'imagenet',
               'eval_crop_fraction': 0.8, 'class_names': NAMES, 'step': 0}, **meta)
  convert_common.save_converted(str(directory), random_variables(model, SIZE, seed=3, train=False), meta)
  return str(directory)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
  return _save(tmp_path_factory.mktemp('export') / 'converted')


def _cli_error(argv, capsys) -> str:
  with pytest.raises(SystemExit) as exit_info:
    errors.run_cli(lambda: export_tool.main(argv))
  assert exit_info.value.code == errors.EXIT_USER_ERROR
  err = capsys.readouterr().err.strip()
  assert err.startswith('error: ') and '\n' not in err
  return err


def test_bad_input_is_one_line_exit_2(checkpoint, tmp_path, capsys):
  out = str(tmp_path / 'out')
  assert 'unknown --format' in _cli_error(
      ['--checkpoint', checkpoint, '--format', 'tflite', '--out', out], capsys)
  full = tmp_path / 'full'
  full.mkdir()
  (full / 'x').write_text('keep me')
  assert 'not an empty directory' in _cli_error(
      ['--checkpoint', checkpoint, '--out', str(full)], capsys)
  assert (full / 'x').read_text() == 'keep me'
  assert '--platforms' in _cli_error(
      ['--checkpoint', checkpoint, '--out', out, '--platforms', 'gpu'], capsys)
  assert 'one of the arguments' in _cli_error(['--out', out], capsys)
  # Metadata naming a network this package cannot build.
  alien = _save(tmp_path / 'alien', model_name='resnet50')
  assert 'resnet50' in _cli_error(['--checkpoint', alien, '--out', out], capsys)
  assert 'does not exist' in _cli_error(
      ['--workdir', str(tmp_path / 'missing'), '--out', out], capsys)
  assert not os.path.exists(out)
  assert not [n for n in os.listdir(tmp_path) if n.startswith('.out.')]  # no staging left


def _write_jpeg(path, height: int, width: int) -> str:
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  image = np.stack([rows * 9 % 256, cols * 5 % 256, (rows * cols) % 256], -1).astype(np.uint8)
  Image.fromarray(image).save(path, quality=95)
  return str(path)


# Runs in a fresh interpreter in which `import jax` fails: the SavedModel alone must serve.
_SERVE = textwrap.dedent('''
    import json, sys
    sys.modules['jax'] = sys.modules['jaxlib'] = None  # TensorFlow imports jax when it can
    import numpy as np
    import tensorflow as tf
    saved, inputs, outputs, *paths = sys.argv[1:]
    data = np.load(inputs)
    served = tf.saved_model.load(saved)
    images = served.signatures['serving_default']
    jpeg = served.signatures['predict_jpeg']
    result = {}
    for n in (3, 8):
      out = images(images=tf.constant(data['images'][:n]))
      result[f'logits{n}'] = out['logits'].numpy()
      result[f'probabilities{n}'] = out['probabilities'].numpy()
    files = []
    for path in paths:
      with open(path, 'rb') as f:
        files.append(f.read())
    out = jpeg(images=tf.constant(files))
    result.update(classes=out['classes'].numpy(), top=out['probabilities'].numpy(),
                  names=out['class_names'].numpy().astype(str))
    try:
      jpeg(images=tf.constant([files[0], b'<html>not an image</html>']))
      error = ''
    except tf.errors.InvalidArgumentError as e:
      error = e.message
    empty = jpeg(images=tf.constant([], tf.string))
    assert empty['classes'].shape == (0, 5), empty
    assert images(images=tf.zeros([0, 16, 16, 3]))['logits'].shape == (0, 10)
    np.savez(outputs, error=np.array(error), **result)
    loaded = [m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax')
              and sys.modules[m] is not None]
    assert not loaded, loaded
''')


@pytest.mark.slow
def test_saved_model_serves_without_jax(checkpoint, tmp_path):
  out = str(tmp_path / 'saved')
  info = export_tool.main(['--checkpoint', checkpoint, '--out', out])
  assert info['signatures'] == ['serving_default', 'predict_jpeg']
  with open(os.path.join(out, export_lib.INFO_FILE)) as f:
    recorded = json.load(f)
  assert recorded['normalization'] == 'imagenet' and recorded['eval_crop_fraction'] == 0.8
  assert recorded['class_names'] == NAMES and recorded['top_k'] == 5

  model, variables, _ = restore.load_for_inference(checkpoint)
  images = np.random.default_rng(0).normal(0, 1, (8, SIZE, SIZE, 3)).astype(np.float32)
  want = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False).logits)(variables, images))
  paths = prediction.example_images() + [_write_jpeg(tmp_path / 'wide.jpg', 24, 40)]
  inputs, outputs = str(tmp_path / 'inputs.npz'), str(tmp_path / 'outputs.npz')
  np.savez(inputs, images=images)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run([sys.executable, '-c', _SERVE, out, inputs, outputs, *paths], env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = np.load(outputs)

  scale = np.abs(want).max()
  for n in (3, 8):  # the batch dimension is symbolic
    np.testing.assert_allclose(got[f'logits{n}'], want[:n], rtol=0, atol=RTOL * scale)
    np.testing.assert_allclose(got[f'probabilities{n}'], jax.nn.softmax(want[:n]), atol=1e-6)

  expected = prediction.predict(checkpoint, paths, top_k=5)
  for row, result in enumerate(expected):
    assert [c for c, _, _ in result['top']] == got['classes'][row].tolist(), result['image']
    assert [name for _, name, _ in result['top']] == got['names'][row].tolist()
    np.testing.assert_allclose(got['top'][row], [p for _, _, p in result['top']], atol=1e-6)
  assert export_lib.NOT_AN_IMAGE in str(got['error']) and '] [1]' in str(got['error'])


@pytest.mark.slow
def test_onnx_matches_jax(checkpoint, tmp_path):
  pytest.importorskip('jax2onnx')
  ort = pytest.importorskip('onnxruntime')
  out = str(tmp_path / 'onnx')
  export_tool.main(['--checkpoint', checkpoint, '--format', 'onnx', '--out', out])
  model, variables, _ = restore.load_for_inference(checkpoint)
  images = np.random.default_rng(1).normal(0, 1, (8, SIZE, SIZE, 3)).astype(np.float32)
  want = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False).logits)(variables, images))
  runtime = ort.InferenceSession(os.path.join(out, export_lib.ONNX_FILE))
  for n in (3, 8):
    logits, probabilities = runtime.run(['logits', 'probabilities'], {'images': images[:n]})
    np.testing.assert_allclose(logits, want[:n], rtol=0, atol=RTOL * np.abs(want).max())
    np.testing.assert_allclose(probabilities, jax.nn.softmax(want[:n]), atol=1e-6)
