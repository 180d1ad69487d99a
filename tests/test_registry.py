"""The model registry: entries carry each model's metadata, the command line's model fields come
from the modules' own annotations, and a model registered from outside the package (``Tiny``
below, with a field of its own) trains through train.py with ``--config.model_overrides``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import pytest
from _training_helpers import registered
import fault_helpers as fh

from inception_jax.convert import torchvision as convert
from inception_jax import models
from inception_jax.errors import UserError
from inception_jax.models import ModelOutput
from inception_jax.config import schema


class Tiny(nn.Module):
  """conv-BN-relu, global pool, a ``hidden``-wide dense layer, the classifier; an aux head on the
  pooled features. ``hidden`` is a field no registered model has."""
  num_classes: int = 10
  hidden: int = 8
  aux_logits: bool = True
  dtype: Any = jnp.float32

  def check_config(self) -> None:
    if self.hidden < 1:
      raise UserError(f'tiny needs hidden >= 1 (got {self.hidden})')

  def min_input_size(self) -> int:
    return 4

  @nn.compact
  def __call__(self, x, train: bool = False) -> ModelOutput:
    x = nn.Conv(6, (3, 3), strides=2, use_bias=False, dtype=self.dtype, name='conv')(
        x.astype(self.dtype))
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, name='bn')(x)
    x = nn.relu(x).mean((1, 2))
    aux = {}
    if self.aux_logits and (train or self.is_initializing()):
      aux['aux'] = nn.Dense(self.num_classes, dtype=self.dtype, name='aux')(x).astype(jnp.float32)
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name='hidden')(x))
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(x)
    return ModelOutput(logits=logits.astype(jnp.float32), aux_logits=aux if train else {})


TINY = models.ModelSpec(Tiny, 'test model (tests/test_registry.py)', default_input_size=16)


def test_override_keys_are_the_registered_models_fields():
  types = models.override_types()
  assert types == schema.model_override_types()
  assert (types['bn_momentum'], types['width_multiplier'], types['aux_adaptive'],
          types['branch5x5_kernel'], types['stem'], types['module_kind']) == (
              float, float, bool, int, str, str)  # Literal['3x3', '7x7'] -> str
  assert not {'dtype', 'lowering', 'bn_axis_name', 'parent', 'name'} & set(types)
  with registered('tiny', TINY):
    assert models.override_types()['hidden'] is int
    assert schema.base_config().model_overrides.get_type('hidden') is int
  assert 'hidden' not in models.override_types() and 'tiny' not in models.available()


def test_entries_carry_what_the_tools_need():
  v3, tv, paper = (models.spec(n) for n in ('inception_v3', 'googlenet_tv', 'googlenet'))
  assert (v3.default_input_size, v3.torchvision_name) == (299, 'inception_v3')
  assert (tv.default_input_size, tv.torchvision_name) == (224, 'googlenet')
  assert paper.torchvision_name == 'googlenet' and 'googlenet_tv' in paper.torchvision_note
  assert models.spec('googlenet_2014').torchvision_name is None
  assert sorted(convert.convertible()) == ['googlenet_tv', 'inception_v3']
  with pytest.raises(UserError, match=r"unknown model 'resnet'; choose one of: googlenet, "):
    models.spec('resnet')


class StemAsInt(Tiny):
  stem: int = 3   # Inception v3's stem is a string


class NoCheck(nn.Module):
  def min_input_size(self) -> int:
    return 1


@pytest.mark.parametrize('name, spec, message', [
    ('tiny_stem', models.ModelSpec(StemAsInt, 'x'),
     r"model field 'stem' is int in 'tiny_stem' but str in 'inception_v3'"),
    ('googlenet', TINY, r"model 'googlenet' is already registered"),
    ('tiny_fn', models.ModelSpec(lambda **kw: Tiny(**kw), 'x'), 'must be a Flax module class'),
    ('tiny_nocheck', models.ModelSpec(NoCheck, 'x'), r'NoCheck lacks check_config'),
    ('tiny_size', models.ModelSpec(Tiny, 'x', default_input_size=0), 'default_input_size > 0'),
])
def test_register_refuses_bad_entries(name, spec, message):
  before = {n: models.spec(n) for n in models.available()}
  with pytest.raises(ValueError, match=message):
    models.register(name, spec)
  assert {n: models.spec(n) for n in models.available()} == before


# train.py with ``tiny`` registered first: what a user's own launcher would do.
_LAUNCHER = '''
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
import test_registry
from inception_jax import models
models.register('tiny', test_registry.TINY)
import train
from absl import app
train._define_flags()
app.run(train._run, flags_parser=train.errors.parse_absl_flags)
'''


def _train(tmp_path, *flags: str) -> subprocess.CompletedProcess:
  launcher = tmp_path / 'train_tiny.py'
  launcher.write_text(textwrap.dedent(_LAUNCHER.format(repo=fh.REPO, tests=fh.TESTS)))
  cmd = [sys.executable, str(launcher), '--config=configs/default.py',
         f'--workdir={tmp_path / "run"}', '--compilation_cache_dir=', '--config.model=tiny',
         *flags]
  return subprocess.run(cmd, cwd=fh.REPO, capture_output=True, text=True, timeout=300,
                        env=fh.env())


@pytest.mark.slow  # a train.py process (imports, a 2-step run of a 16 px model)
def test_a_registered_model_trains_with_its_own_field_from_the_command_line(tmp_path):
  proc = _train(tmp_path, '--config.model_overrides.hidden=4', '--config.image_size=16',
                '--config.num_train_steps=2', '--config.global_batch_size=16',
                '--config.base_batch_size=16', '--config.warmup_epochs=0',
                '--config.eval_split=validation[:32]', '--config.eval_batch_size=32',
                '--config.log_every_steps=1', '--config.checkpoint_every_steps=2',
                '--config.tensorboard=False')
  assert proc.returncode == 0, fh.describe(proc)
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top
  with registered('tiny', TINY):
    model, variables, meta = restore.load_for_inference(str(tmp_path / 'run'))
  assert (meta['model'], meta['step'], meta['model_overrides']['hidden']) == ('tiny', 2, 4)
  assert model.hidden == 4
  assert variables['params']['hidden']['kernel'].shape == (6, 4)   # hidden=4 reached the model
  assert variables['params']['fc']['kernel'].shape == (4, 10)


@pytest.mark.slow  # a train.py process (its imports only: the flag fails first)
def test_a_bad_value_for_a_registered_models_field_is_one_line(tmp_path):
  proc = _train(tmp_path, '--config.model_overrides.hidden=abc')
  assert proc.returncode == 2, fh.describe(proc)
  assert 'Traceback' not in proc.stderr, fh.describe(proc)
  assert fh.last_line(proc.stderr).startswith('error: '), fh.describe(proc)
  assert 'hidden' in fh.last_line(proc.stderr), fh.describe(proc)
  assert not (tmp_path / 'run' / 'checkpoints').exists()
