"""timm inception_v3 -> Flax conversion: logit parity per variant, metadata, bad input.

The parity tests build each variant with ``timm.create_model(name, pretrained=False)`` (no
download), give every weight and BatchNorm statistic non-trivial values, save the state dict,
convert it, and compare the Flax logits with timm's eval-mode logits on the same batch: within
1e-5 relative (max |difference| / max |reference|) in float32. The main heads share one compiled
Flax model at 75 px (the four variants have one architecture); the aux head of ``tv_in1k`` (the
only release with one) needs the full 299 px. Skipped, with the reason, without timm (the
``torch`` extra).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_jax import models
from inception_jax.convert import timm as timm_convert
from inception_jax.errors import UserError
from inception_jax.tools import convert as convert_cli
from _parity import RTOL, rel_err  # pylint: disable=g-bad-import-order

try:
  import timm
  import torch
except ImportError:  # the optional `torch` extra
  timm = torch = None

needs_timm = pytest.mark.skipif(
    timm is None, reason="timm not installed (pip install 'inception_jax[torch]'); parity with "
    'timm is checked only with it')

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = 75      # the smallest input timm's (torchvision's) Inception v3 takes without its aux head
VARIANTS = sorted(timm_convert.VARIANTS)


@functools.lru_cache(maxsize=None)
def flax_apply(aux_logits: bool):
  """One jitted eval-mode apply per head set, shared by every variant."""
  model = models.create('inception_v3', num_classes=1000, aux_logits=aux_logits)
  return jax.jit(lambda v, x: model.apply(v, x, train=False, return_aux=aux_logits))


@functools.lru_cache(maxsize=None)
def timm_reference(name: str):
  """``(model, state_dict)`` of a randomised timm model, built as its release is (aux or not)."""
  v = timm_convert.VARIANTS[name]
  torch.manual_seed(VARIANTS.index(name))
  model = timm.create_model(name, pretrained=False, aux_logits=v.released_with_aux)
  bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  # Statistics of one training-mode batch keep every layer at unit scale (timm's init with mean 0
  # / var 1 makes activations vanish); then perturbed, with random affine terms, so eval-mode BN
  # differs from batch statistics and a swapped or transposed array changes the logits.
  for bn in bns:
    bn.reset_running_stats()
    bn.momentum = None
  model.train()
  with torch.no_grad():
    model(torch.randn(2, 3, 299, 299))
    for bn in bns:
      c = bn.num_features
      bn.running_var.mul_(torch.rand(c) * 1.5 + 0.5)
      bn.running_mean.add_(0.2 * torch.randn(c) * bn.running_var.sqrt())
      bn.weight.copy_(torch.rand(c) + 0.5)
      bn.bias.copy_(0.2 * torch.randn(c))
    model.fc.bias.copy_(0.1 * torch.randn(1000))
  model.eval()
  return model, {k: t.numpy() for k, t in model.state_dict().items()}


def _timm_logits(model, x_nhwc: np.ndarray):
  with torch.no_grad():
    out = model(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy()))
  return out if isinstance(out, tuple) else (out, None)


def test_variant_table_matches_timms_pretrained_cfg():
  """The recorded preprocessing is timm's own, and 'inception' / 'imagenet' reproduce its
  ``(x / 255 - mean) / std`` exactly (as real arithmetic)."""
  from inception_jax.data import preprocessing  # pylint: disable=g-import-not-at-top
  pixels = np.arange(256, dtype=np.float32).reshape(1, 256, 1).repeat(3, axis=2)
  for name, v in timm_convert.VARIANTS.items():
    ours = np.asarray(preprocessing.normalize(pixels, v.normalization))
    np.testing.assert_allclose(ours, (pixels / 255 - np.array(v.mean)) / np.array(v.std),
                               atol=2e-6)
    if timm is not None:
      cfg = timm.models.get_pretrained_cfg(name).to_dict()
      assert cfg['mean'] == v.mean and cfg['std'] == v.std, name
      assert cfg['input_size'] == (3, v.image_size, v.image_size), name
      assert cfg['crop_pct'] == v.crop_pct and cfg['interpolation'] == v.interpolation, name
      assert cfg['num_classes'] == 1000 and cfg['classifier'] == 'fc', name
  assert timm_convert.VARIANTS['inception_v3.gluon_in1k'].normalization == 'imagenet'
  assert timm_convert.variant('adv_inception_v3').timm_name == 'inception_v3.tf_adv_in1k'


@pytest.mark.slow  # compiles Inception v3 (75 px) and runs four timm models
@needs_timm
@pytest.mark.parametrize('name', VARIANTS)
def test_logits_match_timm(name):
  model, sd = timm_reference(name)
  variables = timm_convert.convert_state_dict(name, sd)
  assert ('AuxLogits' in variables['params']) == timm_convert.VARIANTS[name].released_with_aux
  main = {'params': {k: p for k, p in variables['params'].items() if k != 'AuxLogits'},
          'batch_stats': {k: s for k, s in variables['batch_stats'].items() if k != 'AuxLogits'}}
  x = np.random.default_rng(0).uniform(-2, 2, (2, SMALL, SMALL, 3)).astype(np.float32)
  model.aux_logits = False                   # timm runs the aux head only when it has one
  ref, _ = _timm_logits(model, x)
  model.aux_logits = timm_convert.VARIANTS[name].released_with_aux
  got = flax_apply(False)(main, jnp.asarray(x)).logits
  err = rel_err(got, ref.numpy())
  print(f'{name}: max abs {np.abs(np.asarray(got) - ref.numpy()).max():.3g}, rel {err:.3g}')
  assert err <= RTOL, err
  assert np.abs(ref.numpy()).max() > 1.0 and ref.numpy().std() > 0.1  # a non-trivial test


@pytest.mark.slow  # compiles Inception v3 with its aux head at 299 px
@needs_timm
def test_aux_head_matches_timm_tv_in1k():
  model, sd = timm_reference('inception_v3.tv_in1k')
  variables = timm_convert.convert_state_dict('inception_v3.tv_in1k', sd)
  x = np.random.default_rng(1).uniform(-1, 1, (1, 299, 299, 3)).astype(np.float32)
  ref, ref_aux = _timm_logits(model, x)
  out = flax_apply(True)(variables, jnp.asarray(x))
  errors = {'logits': rel_err(out.logits, ref.numpy()),
            'aux': rel_err(out.aux_logits['aux'], ref_aux.numpy())}
  print(f'inception_v3.tv_in1k at 299 px, max relative logit difference vs timm: {errors}')
  assert all(e <= RTOL for e in errors.values()), errors


@needs_timm
@pytest.mark.slow  # builds two full-size timm models and writes two checkpoints
@pytest.mark.parametrize('name,suffix', [('inception_v3.tv_in1k', '.bin'),
                                         ('inception_v3.gluon_in1k', '.safetensors')])
def test_cli_round_trip(name, suffix, tmp_path, capsys):
  from inception_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  model, sd = timm_reference(name)
  weights = str(tmp_path / f'weights{suffix}')
  if suffix == '.safetensors':
    from safetensors.torch import save_file  # pylint: disable=g-import-not-at-top
    save_file({k: t.contiguous() for k, t in model.state_dict().items()}, weights)
  else:
    torch.save(model.state_dict(), weights)
  out = tmp_path / 'out'
  meta = convert_cli.main(['--from', 'timm', '--model', 'inception_v3', '--timm-name', name,
                           '--weights', weights, '--out', str(out)])
  v = timm_convert.VARIANTS[name]
  assert f'--config.normalization={v.normalization}' in capsys.readouterr().out
  params, stats, saved = ckpt_lib.load_pretrained(str(out))
  direct = timm_convert.convert_state_dict(name, sd)
  for a, b in zip(jax.tree.leaves({'params': params, 'batch_stats': stats}),
                  jax.tree.leaves(direct)):
    np.testing.assert_array_equal(a, b)
  for m in (meta, saved):
    assert (m['model'], m['image_size'], m['eval_crop_fraction']) == ('inception_v3', 299, 0.875)
    assert m['normalization'] == v.normalization
    assert m['model_overrides'] == {'aux_logits': v.released_with_aux}
    assert m['source']['timm_name'] == name and m['source']['label_offset'] == 0
    assert tuple(m['source']['mean']) == v.mean and m['source']['interpolation'] == 'bicubic'


def test_unknown_timm_name_and_flag_mistakes():
  with pytest.raises(UserError, match="no converter for timm model 'resnet50'; choose one of "
                                      'inception_v3.tv_in1k, '):
    timm_convert.variant('resnet50')
  base = ['--weights', 'w.pth', '--out', 'o']
  with pytest.raises(UserError, match='--from timm needs --timm-name'):
    convert_cli.main(['--from', 'timm', '--model', 'inception_v3'] + base)
  with pytest.raises(UserError, match='converts to --model inception_v3, not googlenet_tv'):
    convert_cli.main(['--from', 'timm', '--model', 'googlenet_tv', '--timm-name',
                      'inception_v3.tf_in1k'] + base)
  with pytest.raises(UserError, match='--timm-name is only for --from timm'):
    convert_cli.main(['--from', 'torchvision', '--model', 'inception_v3', '--timm-name',
                      'inception_v3.tf_in1k'] + base)


def test_weights_of_another_model_is_one_line_exit_2(tmp_path):
  """A timm resnet50-like state dict (safetensors: no torch needed) is refused by name."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  weights = tmp_path / 'resnet50.safetensors'
  save_file({'conv1.weight': np.zeros((64, 3, 7, 7), np.float32),
             'bn1.weight': np.ones(64, np.float32),
             'layer1.0.conv1.weight': np.zeros((64, 64, 1, 1), np.float32),
             'fc.weight': np.zeros((1000, 2048), np.float32)}, str(weights))
  proc = subprocess.run(
      [sys.executable, '-m', 'inception_jax.tools.convert', '--from', 'timm', '--model',
       'inception_v3', '--timm-name', 'inception_v3.tf_in1k', '--weights', str(weights),
       '--out', str(tmp_path / 'out')],
      cwd=REPO, env={**os.environ, 'PYTHONPATH': REPO}, capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      f'error: weights file {weights} is not a timm inception_v3 state dict '
      '(no Mixed_5b.branch1x1.conv.weight; it has 4 arrays: '), lines
  assert 'pass the weights of inception_v3.tf_in1k' in lines[0]
  assert not (tmp_path / 'out').exists()


def test_1001_classes_record_the_label_offset():
  """A TF-slim-style head with the background class: converted as 1001 classes, offset 1."""
  from test_convert import synthetic_state_dict  # pylint: disable=g-import-not-at-top
  sd = synthetic_state_dict('inception_v3', num_classes=1001, aux_logits=False)
  variables = timm_convert.convert_state_dict('inception_v3.tf_in1k', sd)
  meta = timm_convert.conversion_metadata('inception_v3.tf_in1k', variables)
  assert meta['num_classes'] == 1001 and meta['source']['label_offset'] == 1
  assert meta['model_overrides'] == {'aux_logits': False}
