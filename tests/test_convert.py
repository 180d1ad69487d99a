"""torchvision -> Flax conversion: logit parity, the checkpoint round trip, and bad weight files.

The parity tests build randomly initialised torchvision models (no network: pretrained weights
cannot be downloaded here), give every BatchNorm realistic, non-trivial running statistics, and
compare the converted Flax model's logits with torchvision's on the same input: within 1e-5
relative (max |difference| / max |reference|) in float32, main and auxiliary heads. They are
skipped, with the reason, when torch/torchvision are not installed (the ``torch`` extra); the
pure-numpy mapping and the input validation are tested either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_jax.convert import torchvision as convert
from inception_jax import models
from inception_jax.tools import convert as convert_cli
from inception_jax.errors import UserError
from _parity import RTOL, rel_err  # pylint: disable=g-bad-import-order

try:
  import torch
  import torchvision
except ImportError:  # the optional `torch` extra
  torch = torchvision = None

needs_torch = pytest.mark.skipif(
    torch is None, reason="torch/torchvision not installed (pip install 'inception_jax[torch]'); "
    'conversion parity with torchvision is checked only with them')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
SIZES = {'googlenet_tv': 224, 'inception_v3': 299}   # the released models' input sizes
AUX_NAMES = {'googlenet_tv': ('aux1', 'aux2'), 'inception_v3': ('aux',)}


_APPLY = {}


def flax_apply(name: str, num_classes: int, aux_logits: bool):
  """One jitted eval-mode apply (main + aux heads) per model, shared by the tests."""
  key = (name, num_classes, aux_logits)
  if key not in _APPLY:
    model = models.create(name, num_classes=num_classes, aux_logits=aux_logits)
    _APPLY[key] = jax.jit(lambda v, x: model.apply(v, x, train=False, return_aux=True))
  return _APPLY[key]


def synthetic_state_dict(name: str, num_classes: int = 1000, aux_logits: bool = True,
                         seed: int = 0) -> dict[str, np.ndarray]:
  """Random arrays with torchvision's names and shapes (running_var positive), no torch needed."""
  rng = np.random.default_rng(seed)
  sd = {}
  for key, shape in convert.torch_layout(name, num_classes, aux_logits).items():
    a = rng.standard_normal(shape).astype(np.float32)
    sd[key] = np.abs(a) + 0.5 if key.endswith('running_var') else a
    if key.endswith('bn.running_var'):
      sd[key[:-len('running_var')] + 'num_batches_tracked'] = np.array(7, np.int64)
  return sd


# ---------------------------------------------------------------------------------------------
# torchvision models (module scope: built and run once).


def _build_torch(name: str, aux_logits: bool = True, transform_input: bool = False):
  if name == 'googlenet_tv':
    return torchvision.models.googlenet(weights=None, aux_logits=aux_logits, init_weights=True,
                                        transform_input=transform_input)
  return torchvision.models.inception_v3(weights=None, aux_logits=aux_logits, init_weights=True,
                                         transform_input=transform_input)


def _randomise_batch_norm(model, size: int) -> None:
  """Running statistics from one training-mode pass, then perturbed, plus random affine terms.

  torchvision's init leaves mean 0 / var 1, which with its tiny conv init makes eval-mode
  activations vanish and the comparison trivial; calibrated statistics keep every layer at unit
  scale, and the perturbation makes eval BN differ from batch statistics.
  """
  bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  for bn in bns:
    bn.reset_running_stats()
    bn.momentum = None                    # cumulative average: exactly this batch's statistics
  model.train()
  with torch.no_grad():
    model(torch.randn(2, 3, size, size))
    for bn in bns:
      c = bn.num_features
      bn.running_var.mul_(torch.rand(c) * 1.5 + 0.5)
      bn.running_mean.add_(0.2 * torch.randn(c) * bn.running_var.sqrt())
      bn.weight.copy_(torch.rand(c) + 0.5)
      bn.bias.copy_(0.2 * torch.randn(c))
      bn.momentum = 0.1
  model.eval()


@pytest.fixture(scope='module')
def reference():
  """name -> dict(model, state_dict, inputs and torchvision's outputs), built lazily."""
  cache = {}

  def get(name: str):
    if name in cache:
      return cache[name]
    torch.manual_seed(0)
    size = SIZES[name]
    model = _build_torch(name)
    _randomise_batch_norm(model, size)
    pixels = torch.rand(2, 3, size, size)                 # an image in [0, 1]
    x_inception = pixels * 2 - 1                          # normalization='inception'
    mean, std = (torch.from_numpy(a).view(1, 3, 1, 1) for a in (IMAGENET_MEAN, IMAGENET_STD))
    x_imagenet = (pixels - mean) / std                    # normalization='imagenet'
    out = {'model': model, 'x': x_inception.numpy().transpose(0, 2, 3, 1)}
    with torch.no_grad():
      model.eval()
      out['logits'] = model(x_inception).numpy()
      # torchvision returns aux logits only in training mode: BN and dropout stay in eval mode.
      model.train()
      for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)):
          m.eval()
      train_out = model(x_inception)
      out['aux'] = ({'aux1': train_out.aux_logits1.numpy(), 'aux2': train_out.aux_logits2.numpy()}
                    if name == 'googlenet_tv' else {'aux': train_out.aux_logits.numpy()})
      out['train_mode_logits'] = train_out.logits.numpy()
      # The pretrained models' transform_input=True: mean/std input, rescaled inside.
      model.eval()
      model.transform_input = True
      out['logits_transform_input'] = model(x_imagenet).numpy()
      model.transform_input = False
    out['state_dict'] = {k: v.numpy() for k, v in model.state_dict().items()}
    cache[name] = out
    return out

  return get


@pytest.mark.slow  # compiles the full-size networks in JAX and runs them in torch
@needs_torch
@pytest.mark.parametrize('name', ['googlenet_tv', 'inception_v3'])
def test_logits_match_torchvision(name, reference):
  ref = reference(name)
  np.testing.assert_array_equal(ref['train_mode_logits'], ref['logits'])  # dropout really off
  variables = convert.convert_state_dict(name, ref['state_dict'])
  num_classes, aux = convert.inspect_state_dict(name, ref['state_dict'])
  assert (num_classes, aux) == (1000, True)
  out = flax_apply(name, num_classes, aux)(variables, jnp.asarray(ref['x']))
  errors = {'logits': rel_err(out.logits, ref['logits'])}
  assert set(out.aux_logits) == set(AUX_NAMES[name])
  for head, logits in ref['aux'].items():
    errors[head] = rel_err(out.aux_logits[head], logits)
  # Pretrained torchvision semantics: mean/std input + transform_input == [-1, 1] input here.
  errors['transform_input'] = rel_err(out.logits, ref['logits_transform_input'])
  print(f'{name} max relative logit difference vs torchvision: {errors}')
  assert all(e <= RTOL for e in errors.values()), errors
  assert np.abs(ref['logits']).max() > 1.0 and ref['logits'].std() > 0.1  # a non-trivial test


@pytest.mark.slow  # builds and runs the full-size torchvision models (the reference fixture)
@needs_torch
@pytest.mark.parametrize('name', ['googlenet_tv', 'inception_v3'])
def test_mapping_uses_every_torchvision_array(name, reference):
  """torchvision's state dict and the converter's layout agree key for key and shape for shape;
  the converted tree is exactly the Flax model's variable tree."""
  sd = reference(name)['state_dict']
  layout = convert.torch_layout(name)
  arrays = {k: v.shape for k, v in sd.items() if not k.endswith('num_batches_tracked')}
  assert set(arrays) == set(layout)
  assert all(tuple(arrays[k]) == layout[k] for k in layout)
  variables = convert.convert_state_dict(name, sd)
  model = models.create(name)
  size = SIZES[name]
  abstract = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x),
                            jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32))
  assert jax.tree.map(lambda s: s.shape, dict(abstract)) == jax.tree.map(np.shape, variables)
  assert all(a.dtype == np.float32 for a in jax.tree.leaves(variables))


@needs_torch
def test_state_dict_without_aux_heads():
  """A torchvision model built with aux_logits=False has no aux keys: converted without heads."""
  sd = {k: v.numpy() for k, v in _build_torch('googlenet_tv', aux_logits=False).state_dict().items()}
  assert convert.inspect_state_dict('googlenet_tv', sd) == (1000, False)
  assert set(convert.torch_layout('googlenet_tv', aux_logits=False)) == {
      k for k in sd if not k.endswith('num_batches_tracked')}
  variables = convert.convert_state_dict('googlenet_tv', sd)
  assert 'aux1' not in variables['params'] and 'aux2' not in variables['params']


@pytest.mark.slow  # builds and runs full-size torchvision GoogLeNet (the reference fixture)
@needs_torch
def test_cli_round_trip(reference, tmp_path, capsys):
  """The CLI's checkpoint loads through init_from's loader and gives the same logits."""
  from inception_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top

  ref = reference('googlenet_tv')
  weights = tmp_path / 'googlenet.pth'
  torch.save(ref['model'].state_dict(), weights)
  out_dir = tmp_path / 'converted'
  meta = convert_cli.main(['--from', 'torchvision', '--model', 'googlenet_tv',
                           '--weights', str(weights), '--out', str(out_dir)])
  assert '--config.normalization=inception' in capsys.readouterr().out

  params, batch_stats, saved_meta = ckpt_lib.load_pretrained(str(out_dir))
  direct = convert.convert_state_dict('googlenet_tv', ref['state_dict'])
  restored = {'params': params, 'batch_stats': batch_stats}
  assert jax.tree.structure(restored) == jax.tree.structure(direct)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(direct)):
    np.testing.assert_array_equal(a, b)
  apply = flax_apply('googlenet_tv', 1000, True)
  x = jnp.asarray(ref['x'])
  np.testing.assert_array_equal(apply(restored, x).logits, apply(direct, x).logits)

  for m in (saved_meta, json.loads((out_dir / 'meta.json').read_text()), meta):
    assert m['model'] == 'googlenet_tv' and m['num_classes'] == 1000
    assert m['normalization'] == 'inception' and m['image_size'] == 224
    assert m['model_overrides'] == {'aux_logits': True} and m['step'] == 0
    assert m['source']['transform_input'] is True
  assert saved_meta['checksum'] == ckpt_lib.state_checksum(restored)

  with pytest.raises(UserError, match='not an empty directory'):
    convert_cli.main(['--from', 'torchvision', '--model', 'googlenet_tv',
                      '--weights', str(weights), '--out', str(out_dir)])
  # The wrong --model for a real file.
  with pytest.raises(UserError, match='looks like googlenet_tv, not inception_v3'):
    convert.convert_file('inception_v3', str(weights), str(tmp_path / 'v3'))


@needs_torch
@pytest.mark.slow  # builds and runs full-size torchvision Inception v3 (the reference fixture)
def test_bad_weight_files(reference, tmp_path):
  good = tmp_path / 'good.pth'
  torch.save({'fc.weight': torch.zeros(10, 1024), 'fc.bias': torch.zeros(10)}, good)
  data = good.read_bytes()
  truncated = tmp_path / 'truncated.pth'
  truncated.write_bytes(data[:len(data) // 2])
  with pytest.raises(UserError, match=r'truncated\.pth is truncated or not a PyTorch state dict'):
    convert.load_torch_state_dict(truncated)
  junk = tmp_path / 'junk.pth'
  junk.write_bytes(b'not a checkpoint\n' * 64)
  with pytest.raises(UserError, match='truncated or not a PyTorch state dict'):
    convert.load_torch_state_dict(junk)
  # A whole pickled module needs the unrestricted unpickler: refused, never loaded.
  pickled = tmp_path / 'module.pth'
  torch.save(torch.nn.Linear(2, 2), pickled)
  with pytest.raises(UserError, match='pickled Python objects'):
    convert.load_torch_state_dict(pickled)
  # Training checkpoints wrapping the state dict, and half-precision weights, are accepted.
  wrapped = tmp_path / 'wrapped.pth'
  torch.save({'epoch': 3, 'state_dict': {'fc.bias': torch.ones(3, dtype=torch.bfloat16)}}, wrapped)
  loaded = convert.load_torch_state_dict(wrapped)
  assert loaded['fc.bias'].dtype == np.float32 and loaded['fc.bias'].tolist() == [1, 1, 1]
  # The other model's state dict.
  with pytest.raises(UserError, match='weights file x looks like inception_v3, not googlenet_tv'):
    convert.convert_state_dict('googlenet_tv', reference('inception_v3')['state_dict'],
                               source='weights file x')


# ---------------------------------------------------------------------------------------------
# Pure numpy / no torch needed.


def test_aux_fc1_permutation_matches_nchw_flatten():
  """torch: W @ flatten_NCHW(map); here: flatten_NHWC(map) @ kernel; the same numbers."""
  rng = np.random.default_rng(0)
  weight = rng.standard_normal((1024, 2048)).astype(np.float32)
  feature_map = rng.standard_normal((2, 128, 4, 4)).astype(np.float32)
  sd = synthetic_state_dict('googlenet_tv')
  sd['aux1.fc1.weight'] = weight
  kernel = convert.convert_state_dict('googlenet_tv', sd)['params']['aux1']['fc1']['kernel']
  torch_out = feature_map.reshape(2, -1) @ weight.T
  flax_out = feature_map.transpose(0, 2, 3, 1).reshape(2, -1) @ kernel
  np.testing.assert_allclose(flax_out, torch_out, rtol=1e-5, atol=1e-3)
  # v3's aux fc sees a 1x1 map: a plain transpose.
  sd = synthetic_state_dict('inception_v3')
  v3 = convert.convert_state_dict('inception_v3', sd)['params']
  np.testing.assert_array_equal(v3['AuxLogits']['fc']['kernel'], sd['AuxLogits.fc.weight'].T)
  np.testing.assert_array_equal(v3['Mixed_5b']['branch1x1']['conv']['kernel'],
                                sd['Mixed_5b.branch1x1.conv.weight'].transpose(2, 3, 1, 0))


def test_num_classes_and_aux_heads_are_inferred():
  sd = synthetic_state_dict('googlenet_tv', num_classes=10, aux_logits=False)
  sd = {'module.' + k: v for k, v in sd.items()}         # saved from DataParallel
  variables = convert.convert_state_dict('googlenet_tv', sd)
  assert variables['params']['fc']['kernel'].shape == (1024, 10)
  assert 'aux1' not in variables['params']
  np.testing.assert_array_equal(variables['batch_stats']['conv1']['bn']['var'],
                                sd['module.conv1.bn.running_var'])
  meta = convert.conversion_metadata('googlenet_tv', variables, transform_input=False)
  assert meta['num_classes'] == 10 and meta['model_overrides'] == {'aux_logits': False}
  assert meta['normalization'] == 'imagenet'
  meta = convert.conversion_metadata('inception_v3', convert.convert_state_dict(
      'inception_v3', synthetic_state_dict('inception_v3', num_classes=5)))
  assert (meta['num_classes'], meta['normalization'], meta['image_size']) == (5, 'inception', 299)
  assert meta['model_overrides'] == {'aux_logits': True}


def _drop(sd, prefix):
  return {k: v for k, v in sd.items() if not k.startswith(prefix)}


@pytest.mark.parametrize('mutate, message', [
    (lambda sd: _drop(sd, 'inception5b.branch1.'), r'5 missing \(inception5b\.branch1\.'),
    (lambda sd: _drop(sd, 'aux2.'), r'9 missing \(aux2\.'),               # half the aux heads
    (lambda sd: {**sd, 'extra.weight': np.zeros(3, np.float32)}, r'1 unexpected \(extra\.weight'),
    (lambda sd: {**sd, 'conv1.conv.weight': np.zeros((64, 3, 5, 5), np.float32)},
     r'conv1\.conv\.weight has shape \(64, 3, 5, 5\).*only the number of classes'),
    (lambda sd: {**sd, 'fc.weight': np.zeros((1000, 2048), np.float32)},
     r'fc\.weight has shape \(1000, 2048\)'),
    (lambda sd: {**sd, 'aux1.fc2.weight': np.zeros((10, 1024), np.float32)},
     r'aux1\.fc2\.weight has shape \(10, 1024\)'),
    (lambda sd: {**sd, 'conv2.bn.running_var': np.full(64, np.nan, np.float32)}, 'NaN or Inf'),
    (lambda sd: {**sd, 'conv2.bn.running_var': np.ones(64, np.int64)}, 'dtype int64'),
    (lambda sd: {k: v for k, v in sd.items() if k not in ('fc.weight',)}, 'no 2-D classifier'),
    (lambda sd: synthetic_state_dict('inception_v3', aux_logits=False),
     'looks like inception_v3, not googlenet_tv'),
    (lambda sd: {'layer1.0.conv1.weight': np.zeros((64, 64, 3, 3), np.float32)}, 'resnet'),
    (lambda sd: {'foo.weight': np.zeros(3, np.float32)},
     r'not a torchvision googlenet state dict: 305 of its 305 arrays are missing'),
])
def test_state_dict_validation(mutate, message):
  sd = mutate(synthetic_state_dict('googlenet_tv'))
  with pytest.raises(UserError, match=message):
    convert.convert_state_dict('googlenet_tv', sd)


def test_wrong_model_for_v3_and_unknown_model():
  with pytest.raises(UserError, match='looks like googlenet_tv, not inception_v3'):
    convert.convert_state_dict('inception_v3', synthetic_state_dict('googlenet_tv'))
  with pytest.raises(UserError, match="cannot convert 'googlenet'.*'googlenet_tv' layout"):
    convert.convert_state_dict('googlenet', {})


def test_weight_file_errors_without_torch(tmp_path, monkeypatch):
  with pytest.raises(UserError, match='does not exist'):
    convert.load_torch_state_dict(tmp_path / 'missing.pth')
  with pytest.raises(UserError, match='is a directory'):
    convert.load_torch_state_dict(tmp_path)
  empty = tmp_path / 'empty.pth'
  empty.write_bytes(b'')
  with pytest.raises(UserError, match='is empty'):
    convert.load_torch_state_dict(empty)
  weights = tmp_path / 'w.pth'
  weights.write_bytes(b'x' * 16)
  monkeypatch.setitem(sys.modules, 'torch', None)          # as if the extra were not installed
  with pytest.raises(UserError, match=r"pip install 'inception_jax\[torch\]'"):
    convert.load_torch_state_dict(weights)
  tensors = tmp_path / 'w.safetensors'
  tensors.write_bytes(b'x' * 16)
  monkeypatch.setitem(sys.modules, 'safetensors', None)
  monkeypatch.setitem(sys.modules, 'safetensors.numpy', None)
  with pytest.raises(UserError, match='pip install safetensors'):
    convert.load_torch_state_dict(tensors)


def test_out_dir_must_be_new(tmp_path):
  (tmp_path / 'keep.txt').write_text('precious')
  variables = convert.convert_state_dict('googlenet_tv', synthetic_state_dict('googlenet_tv'))
  with pytest.raises(UserError, match='not an empty directory'):
    convert.save_converted(tmp_path, variables, convert.conversion_metadata('googlenet_tv',
                                                                            variables))
  assert (tmp_path / 'keep.txt').read_text() == 'precious'


def test_cli_missing_file_is_one_line_exit_2(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'inception_jax.tools.convert', '--from', 'torchvision', '--model',
       'inception_v3', '--weights', str(tmp_path / 'nope.pth'), '--out', str(tmp_path / 'out')],
      cwd=REPO, env={**os.environ, 'PYTHONPATH': REPO}, capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip().splitlines() == [f'error: weights file {tmp_path / "nope.pth"} '
                                              'does not exist']
  assert not (tmp_path / 'out').exists()


def test_cli_bad_flags_are_user_errors():
  with pytest.raises(UserError, match="invalid choice: 'googlenet'"):
    convert_cli.main(['--from', 'torchvision', '--model', 'googlenet', '--weights', 'w.pth',
                      '--out', 'out'])
  with pytest.raises(UserError, match='required: --out'):
    convert_cli.main(['--from', 'torchvision', '--model', 'inception_v3', '--weights', 'w.pth'])
