"""The Table 3 ladder of "Rethinking the Inception Architecture" (configs/ladder/): each row
differs from the one before in exactly the documented field, carries the paper's numbers, is a
valid training config and builds its network."""

from __future__ import annotations

import os
import re

import pytest

from inception_jax import models
from inception_jax.models import summary
from inception_jax.tools import sweep
from inception_jax.config import schema

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LADDER = os.path.join(REPO, 'configs', 'ladder')

# Rethinking the Inception Architecture, Table 3 (single crop): top-1 / top-5 error, cost (G ops).
ROWS = [
    ('01_googlenet', 'GoogLeNet', 29.0, 9.2, 1.5),
    ('02_bn_googlenet', 'BN-GoogLeNet', 26.8, None, 1.5),
    ('03_bn_inception', 'BN-Inception', 25.2, 7.8, 2.0),
    ('04_inception_v2', 'Inception-v2', 23.4, None, 3.8),
    ('05_rmsprop', '+RMSProp', 23.1, 6.3, 3.8),
    ('06_label_smoothing', '+Label Smoothing', 22.8, 6.1, 3.8),
    ('07_factorized_7x7', '+Factorized 7x7', 21.6, 5.8, 4.8),
    ('08_bn_auxiliary', '+BN-auxiliary', 21.2, 5.6, 4.8),
]
# What each row changes from the row before it (written out here, independently of the files).
STEPS = {
    '02_bn_googlenet': {'model': ('googlenet_2014', 'googlenet')},
    '03_bn_inception': {'model_overrides.factorize_5x5': (None, True)},
    '05_rmsprop': {'optimizer': ('sgd', 'rmsprop')},
    '06_label_smoothing': {'label_smoothing': (0.0, 0.1)},
    '07_factorized_7x7': {'model_overrides.stem': ('7x7', '3x3')},
    '08_bn_auxiliary': {'model_overrides.bn_auxiliary': (False, True)},
}
# Rows 1 and 4 start from the project's recipes.
FROM_RECIPE = {
    '01_googlenet': ('googlenet_imagenet', {'model': ('googlenet', 'googlenet_2014')}),
    '04_inception_v2': ('inception_v3_imagenet', {
        'optimizer': ('rmsprop', 'sgd'), 'label_smoothing': (0.1, 0.0),
        'model_overrides.stem': (None, '7x7'), 'model_overrides.bn_auxiliary': (True, False)}),
}


def _row(name, arg=''):
  return sweep.load_config_file(os.path.join(LADDER, f'{name}.py') + (f':{arg}' if arg else ''))


def _recipe(name):
  return sweep.load_config_file(os.path.join(REPO, 'configs', f'{name}.py'))


def _diff(before, after):
  """{dotted field: (before, after)} over every field but ``paper``."""
  a, b = sweep.flatten(before.to_dict()), sweep.flatten(after.to_dict())
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if k.split('.')[0] != 'paper' and a.get(k) != b.get(k)}


@pytest.fixture(scope='module')
def configs():
  return {arg: {name: _row(name, arg) for name, *_ in ROWS} for arg in ('', 'digits')}


@pytest.mark.parametrize('arg', ['', 'digits'])
def test_each_row_changes_exactly_the_documented_field(configs, arg):
  rows = configs[arg]
  names = [name for name, *_ in ROWS]
  for before, after in zip(names, names[1:]):
    if after in STEPS:
      assert _diff(rows[before], rows[after]) == STEPS[after], after
    else:  # Inception-v2 changes network family, data size and recipe at once (documented)
      assert after == '04_inception_v2'
      assert len(_diff(rows[before], rows[after])) > 10
  for name, (recipe, changes) in FROM_RECIPE.items():
    if not arg:
      assert _diff(_recipe(recipe), rows[name]) == changes, name
  # Every row also documents its change in its own file (CHANGES), and agrees with the above.
  for name in names:
    module = sweep.load_config_module(os.path.join(LADDER, f'{name}.py'))
    documented = STEPS.get(name) or FROM_RECIPE[name][1]
    assert module.CHANGES == {k: new for k, (_, new) in documented.items()}, name


def test_last_row_is_the_inception_v3_recipe(configs):
  """+BN-auxiliary is Inception v3: the project's recipe, with the stem spelled out."""
  diff = _diff(_recipe('inception_v3_imagenet'), configs['']['08_bn_auxiliary'])
  assert diff == {'model_overrides.stem': (None, '3x3')}
  assert models.create('inception_v3').stem == '3x3'  # None = the registry's value


def test_rows_carry_the_papers_numbers(configs):
  for name, row, top1, top5, cost in ROWS:
    for arg in ('', 'digits'):
      paper = configs[arg][name].paper
      assert (paper.row, paper.top1_error, paper.top5_error, paper.cost_bn_ops) == (
          row, top1, top5, cost), name
      assert 'Table 3' in paper.table
    with open(os.path.join(LADDER, f'{name}.py')) as f:
      doc = f.read().split('"""')[1]
    first = doc.splitlines()[0]
    assert f'{top1:g}% top-1' in first and f'({cost:.1f} G ops)' in first, first
    assert (f'{top5:g}% top-5' if top5 is not None else 'top-5 not given') in first, first


@pytest.mark.slow  # traces every row's full-size network
@pytest.mark.parametrize('arg', ['', 'digits'])
def test_rows_are_valid_and_build_their_networks(configs, arg):
  params, traced = {}, {}
  for name, *_ in ROWS:
    c = configs[arg][name]
    schema.validate_config(c)
    classes = 10 if arg else 1000
    assert c.dataset == ('digits' if arg else 'imagenet2012')
    model = models.create(c.model, num_classes=classes, **schema.model_overrides(c))
    assert model.min_input_size() <= c.image_size
    key = (repr(model), c.image_size)  # rows 4-6 share a network: trace it once
    if key not in traced:
      traced[key] = summary.count_params(model, c.image_size)  # under jax.eval_shape
    params[name] = traced[key]
    assert params[name] > 0
    if not arg:
      assert c.image_size == (224 if c.model.startswith('googlenet') else 299)
  # The recipe-only rows train the same network as the row before them...
  assert params['05_rmsprop'] == params['04_inception_v2'] == params['06_label_smoothing']
  # ...and the architectural rows change it.
  assert len({params[n] for n in ('01_googlenet', '02_bn_googlenet', '03_bn_inception',
                                  '04_inception_v2', '07_factorized_7x7', '08_bn_auxiliary')}) == 6


@pytest.mark.slow  # traces two full-size Inception v3s
def test_factorizing_the_stem_costs_multiply_adds():
  """Row 7's change is real: the 3x3 stem does more work than the 7x7 it replaces."""
  macs = {}
  for name in ('06_label_smoothing', '07_factorized_7x7'):
    c = _row(name)
    model = models.create(c.model, num_classes=1000, **schema.model_overrides(c))
    macs[name] = summary.count_macs(model, c.image_size)
  assert macs['07_factorized_7x7'] > macs['06_label_smoothing']


def test_ladder_sweep_runs_every_row_in_order():
  config = sweep.load_config_file(os.path.join(REPO, 'configs', 'ablations', 'ladder.py'))
  runs = sweep.expand(config, '/sweeps/ladder', search=[REPO])
  names = [name for name, *_ in ROWS]
  assert [r.name for r in runs[:8]] == [f'row={n}/seed=0' for n in names]
  assert [os.path.basename(r.base) for r in runs[:8]] == [f'{n}.py:digits' for n in names]
  assert all(r.overrides == {'seed': r.seed} for r in runs)
  imagenet = sweep.load_config_file(os.path.join(REPO, 'configs', 'ablations', 'ladder.py') +
                                    ':imagenet')
  assert tuple(imagenet.seeds) == (0,)
  assert all(re.search(r':imagenet$', r.base)
             for r in sweep.expand(imagenet, '/sweeps/ladder', search=[REPO]))


def test_bad_option_is_an_error():
  with pytest.raises(ValueError, match="unknown config option 'cifar'"):
    _row('05_rmsprop', 'cifar')
