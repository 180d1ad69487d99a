"""Fine-tuning converted weights on an image folder (configs/finetune_folder.py), end to end.

A "converted" checkpoint of TinyNet (5 classes, written by ``convert.common.save_converted`` as a
converter writes it) is fine-tuned on a generated 3-class JPEG folder through the real config file
and training loop: the classifier is replaced (3 outputs), the loss falls, the preprocessing comes
from the checkpoint's metadata; with ``freeze_backbone`` every backbone parameter is bit-identical
after training while the classifiers changed. Two loop runs of one small program (a second or two
of compilation each); the real networks' classifier names are checked from abstract shapes.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from _training_helpers import TINYNET, loop_options, registered

from inception_jax.config import loading as config_loading
from inception_jax.convert import common
from inception_jax.errors import UserError
from inception_jax.training import optimizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'configs', 'finetune_folder.py')
COLOURS = [(220, 40, 40), (40, 200, 60), (50, 60, 230)]   # one class per dominant colour


def _write_folder(root, per_class: dict[str, int], seed: int = 0) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  for split, count in per_class.items():
    for c, colour in enumerate(COLOURS):
      os.makedirs(root / split / f'class{c}', exist_ok=True)
      for i in range(count):
        pixels = np.clip(np.array(colour) + rng.normal(0, 40, (20, 20, 3)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(root / split / f'class{c}' / f'{i}.jpg')


def _converted_checkpoint(out_dir) -> dict:
  """A 5-class TinyNet as a converter writes it: params, BN statistics and meta.json."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  model = models.create('tinynet', num_classes=5)
  x = np.zeros((2, 16, 16, 3), np.float32)
  variables = jax.tree.map(np.asarray, model.init(
      {'params': jax.random.PRNGKey(7), 'dropout': jax.random.PRNGKey(8)}, x, train=True))
  variables = {'params': variables['params'], 'batch_stats': jax.tree.map(
      lambda a: a + 0.25, variables['batch_stats'])}   # not the fresh init's 0 / 1
  meta = common.conversion_metadata(
      'tinynet', num_classes=5, aux_logits=True, image_size=16, eval_crop_fraction=1.0,
      normalization='imagenet', source={'framework': 'test'})
  common.save_converted(out_dir, variables, meta)
  return variables


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('finetune')
  with registered('tinynet', TINYNET):
    _write_folder(tmp / 'images', {'train': 8, 'val': 2})
    converted = _converted_checkpoint(tmp / 'converted')
    yield tmp, converted


def _run(tmp, name, **overrides):
  from inception_jax.training import loop  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config_file(f'{CONFIG}:{tmp / "converted"}')
  # The checkpoint's metadata decided these (tinynet's own, not the config file's 299 / inception).
  assert (config.model, config.image_size, config.normalization) == ('tinynet', 16, 'imagenet')
  assert config.eval_crop_fraction == 1.0 and config.model_overrides.aux_logits is True
  assert config.init_from == str(tmp / 'converted')
  fields = {'dataset': f'folder:{tmp / "images"}', 'data_dir': str(tmp / 'tfds'),
            'global_batch_size': 8, 'eval_batch_size': 6, 'num_devices': 1,
            'num_train_steps': 12, 'warmup_epochs': 0.0, 'base_batch_size': 8,
            'learning_rate': 0.2, 'augment': 'resize', 'log_every_steps': 1,
            'checkpoint_every_steps': 6, 'keep_checkpoints': 3, 'shuffle_buffer': 64, 'tensorboard': False, **overrides}
  config = config_loading.apply_overrides(config, fields, 'test')
  workdir = str(tmp / name)
  result = loop.train_and_evaluate(config, workdir, loop_options())
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  losses = [r['loss'] for r in records if r.get('kind') == 'train']
  return result, losses


def _flat(tree):
  return {'/'.join(str(k.key) for k in path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.slow  # a training run (compiles TinyNet's steps; about a minute on 2 busy cores)
def test_finetune_replaces_classifier_and_loss_falls(setup):
  tmp, converted = setup
  with registered('tinynet', TINYNET):
    result, losses = _run(tmp, 'full')
  params = _flat(result.state.params)
  assert params['fc/kernel'].shape[-1] == 3 and params['aux1/kernel'].shape[-1] == 3
  assert len(losses) >= 10 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
  # The backbone started from the converted weights (and then trained).
  start = _flat(converted['params'])
  assert not np.array_equal(params['conv1_conv/kernel'], start['conv1_conv/kernel'])
  assert result.final_eval is not None


@pytest.mark.slow  # a training run (compiles TinyNet's steps; about a minute on 2 busy cores)
def test_freeze_backbone_trains_only_the_classifiers(setup):
  tmp, converted = setup
  with registered('tinynet', TINYNET):
    result, losses = _run(tmp, 'frozen', freeze_backbone=True)
  params, start = _flat(result.state.params), _flat(converted['params'])
  backbone = [k for k in params if not k.startswith(('fc/', 'aux1/'))]
  assert backbone and all(np.array_equal(params[k], start[k]) for k in backbone), backbone
  # The classifiers trained: they moved between the checkpoints at steps 6 and 12.
  from inception_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(result.workdir), read_only=True)
  try:
    mid = _flat(ckpt.restore_raw(6)['params'])
  finally:
    ckpt.close()
  heads = [k for k in params if k.startswith(('fc/', 'aux1/'))]
  assert heads and all(not np.array_equal(params[k], mid[k]) for k in heads), heads
  assert all(np.array_equal(mid[k], start[k]) for k in backbone)
  assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


def test_head_labels_of_the_real_networks():
  """fc and the aux classifiers are the heads of every registered network, from abstract shapes."""
  heads = {'googlenet': {'fc', 'aux1', 'aux2'}, 'googlenet_tv': {'fc', 'aux1', 'aux2'},
           'inception_v3': {'fc', 'AuxLogits'}}
  for name, expected in heads.items():
    params = common.abstract_variables(name, 10, True)['params']
    labels = optimizers.head_labels(params)
    found = {k for k, sub in labels.items()
             if set(jax.tree.leaves(sub)) == {optimizers.HEAD}}
    assert found == expected, (name, found)
    assert all(set(jax.tree.leaves(labels[k])) == {optimizers.BACKBONE}
               for k in labels if k not in expected)
  with pytest.raises(UserError, match='no classifier module named fc or aux'):
    optimizers.head_labels({'conv': {'kernel': np.zeros(1)}})


def test_bn_momentum_one_holds_running_statistics():
  """The documented frozen-BN setting: a training-mode ConvBN with momentum 1.0 leaves its
  running statistics bit-identical."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from inception_jax.models import layers  # pylint: disable=g-import-not-at-top
  block = layers.ConvBN(4, (3, 3), norm_momentum=1.0)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 6, 6, 3)), jnp.float32)
  variables = block.init(jax.random.PRNGKey(0), x, train=False)
  stats = jax.tree.map(lambda a: a + 0.3, variables['batch_stats'])
  _, updates = block.apply({'params': variables['params'], 'batch_stats': stats}, x, train=True,
                           mutable=['batch_stats'])
  for a, b in zip(jax.tree.leaves(updates['batch_stats']), jax.tree.leaves(stats)):
    np.testing.assert_array_equal(a, b)


def test_config_arg_errors(tmp_path):
  with pytest.raises(UserError, match='cannot read .*meta.json'):
    config_loading.load_config_file(f'{CONFIG}:{tmp_path / "nowhere"}')
  (tmp_path / 'meta.json').write_text('{"model": "inception_v3"}')
  with pytest.raises(UserError, match='lacks normalization, image_size, eval_crop_fraction'):
    config_loading.load_config_file(f'{CONFIG}:{tmp_path}')
  config = config_loading.load_config_file(CONFIG)
  assert (config.model, config.freeze_backbone, config.optimizer) == ('inception_v3', False, 'sgd')
  assert config.init_from is None
