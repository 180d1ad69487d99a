"""Accounting tests: MACs against the references, per-module rows, naive vs reduced, the CLI."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from inception_jax import models
from inception_jax.models import summary
from inception_jax.tools import summary as summary_cli
from inception_jax.errors import UserError
from inception_jax.models import googlenet as googlenet_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('name, reference, exact', [
    ('googlenet_tv', 1.4984e9, 1_498_376_192),   # torchvision GoogLeNet_Weights _ops 1.498
    ('googlenet', 1.583e9, 1_582_671_872),       # 5x5 branch
    ('inception_v3', 5.7132e9, 5_713_216_096),   # torchvision Inception_V3_Weights _ops 5.713
])
def test_macs_match_the_references(name, reference, exact):
  macs = summary.count_macs(models.create(name))
  assert abs(macs - reference) / reference < 1e-3
  assert macs == exact  # pins the convention: conv + linear multiply-adds, inference only


def test_macs_do_not_depend_on_the_convolution_lowering():
  """The same count under every lowering, and a FastConv that hands a form to nn.Conv.__call__
  (intercepted twice for one call) is counted once."""
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  for lw in (lowering.plain(), lowering.for_backend('cpu', network='googlenet'),
             lowering.for_backend('gpu', network='googlenet')):
    assert summary.count_macs(models.create('googlenet_tv', lowering=lw)) == 1_498_376_192
  grouped = lowering.FastConv(4, (3, 3), feature_group_count=2, padding=1)
  assert summary._module_cost(grouped, (1, 8, 8, 4))[1] == 8 * 8 * 4 * 9 * 4 // 2  # pylint: disable=protected-access


def test_rows_add_up_to_the_totals():
  model = models.create('googlenet_tv')
  rows = summary.module_table(model, 224)
  names = [r.name for r in rows]
  assert names == ['stem', 'inception3a', 'inception3b', 'inception4a', 'aux1', 'inception4b',
                   'inception4c', 'inception4d', 'aux2', 'inception4e', 'inception5a',
                   'inception5b', 'classifier']
  assert [r.name for r in rows if r.aux] == ['aux1', 'aux2']
  assert sum(r.params for r in rows) == summary.count_params(model) == 13_004_888
  assert sum(r.macs for r in rows if not r.aux) == summary.count_macs(model)
  assert summary.count_macs(model, include_aux=True) == sum(r.macs for r in rows)
  by_name = {r.name: r for r in rows}
  assert by_name['stem'].output_shape == (56, 56, 192)
  assert by_name['inception5b'].output_shape == (7, 7, 1024)
  assert by_name['classifier'].params == 1024 * 1000 + 1000
  assert by_name['classifier'].macs == 1024 * 1000
  assert by_name['stem'].macs == (112 * 112 * 64 * 7 * 7 * 3 + 56 * 56 * 64 * 64
                                  + 56 * 56 * 192 * 9 * 64)
  v3 = {r.name: r for r in summary.module_table(models.create('inception_v3'))}
  assert v3['AuxLogits'].aux and v3['Mixed_6e'].output_shape == (17, 17, 768)


@pytest.mark.slow  # traces ten full-size networks
def test_switches_change_macs_in_the_expected_direction():
  def macs(name, **overrides):
    return summary.count_macs(models.create(name, aux_logits=False, **overrides))
  # GoogLeNet: the 5x5 -> 3x3 difference is (25 - 9) * r * c per output pixel of each module.
  grid = {'3': 28 * 28, '4': 14 * 14, '5': 7 * 7}
  expected = sum(grid[s.name[9]] * 16 * s.ch5x5red * s.ch5x5 for s in googlenet_lib.TABLE1)
  assert macs('googlenet') - macs('googlenet', branch5x5_kernel=3) == expected
  assert macs('googlenet', module_kind='naive') > 2 * macs('googlenet')
  v3 = macs('inception_v3')
  assert macs('inception_v3', stem='7x7') < v3
  assert macs('inception_v3', factorize_5x5=False) > v3
  assert macs('inception_v3', asymmetric_7x7=False) > v3
  assert macs('inception_v3', expanded_3x3=False) > v3


def test_naive_vs_reduced_view():
  rows = summary.naive_vs_reduced(models.create('googlenet_tv'), 224)
  assert [r['name'] for r in rows] == [s.name for s in googlenet_lib.TABLE1]
  for row, spec in zip(rows, googlenet_lib.TABLE1):
    c_in = row['input_shape'][-1]
    assert row['naive_output_shape'][-1] == spec.ch1x1 + spec.ch3x3 + spec.ch5x5 + c_in
    assert row['reduced_output_shape'][-1] == spec.ch1x1 + spec.ch3x3 + spec.ch5x5 + spec.pool_proj
    assert row['naive_params'] > row['reduced_params'] and row['macs_saved'] > 0
  first = rows[0]
  assert first['input_shape'] == [28, 28, 192]
  assert first['naive_params'] == 192 * (64 + 9 * 128 + 9 * 32) + 2 * (64 + 128 + 32)
  assert first['reduced_params'] == 155_872
  assert first['naive_macs'] == 28 * 28 * first['naive_params'] - 28 * 28 * 2 * (64 + 128 + 32)
  with pytest.raises(UserError, match='GoogLeNet family'):
    summary.naive_vs_reduced(models.create('inception_v3'))


def test_cli_prints_tables_and_one_line_errors(capsys):
  assert summary_cli.main(['--model', 'googlenet_tv', '--naive-vs-reduced']) == 0
  text = capsys.readouterr().out
  assert 'inception3a' in text and 'total (inference)' in text and '6,624,904' in text
  assert 'naive Inception modules' in text and 'all modules' in text
  with pytest.raises(UserError, match=r'at least 299x299 pixels \(got 200x200\).*aux_adaptive'):
    summary_cli.main(['--model', 'inception_v3', '--size', '200'])
  with pytest.raises(UserError, match='key=value'):
    summary_cli.main(['--model', 'googlenet', '--set', 'aux_logits'])
  with pytest.raises(UserError, match="unknown override 'colour'"):
    summary_cli.main(['--model', 'googlenet', '--set', 'colour=red'])


@pytest.mark.slow  # spawns a Python process
def test_cli_json_in_a_fresh_interpreter():
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(REPO), *filter(None, [os.environ.get('PYTHONPATH')])]))
  proc = subprocess.run(
      [sys.executable, '-m', 'inception_jax.tools.summary', '--model', 'inception_v3', '--set',
       'aux_logits=False', '--set', "stem='7x7'", '--json'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True)
  result = json.loads(proc.stdout)
  model = models.create('inception_v3', aux_logits=False, stem='7x7')
  assert result['total_params'] == summary.count_params(model)
  assert result['total_macs'] == summary.count_macs(model)
  assert result['aux_params'] == 0 and result['size'] == 299
  assert [r['name'] for r in result['rows']][0] == 'stem'
  assert sum(r['params'] for r in result['rows']) == result['total_params']
