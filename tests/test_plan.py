"""``python -m inception_jax.tools.plan``: the run's numbers before the first step, without the data,
equal to what the training loop will use. No model is compiled here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from inception_jax.training import plan
from inception_jax.tools import sweep
from inception_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(name, arg=''):
  return sweep.load_config_file(os.path.join(REPO, 'configs', name) + (f':{arg}' if arg else ''))


def test_inception_v3_reference_plan_at_batch_1024():
  p = plan.make_plan(_config('inception_v3_imagenet.py'), 8)
  assert p['global_batch_size'] == 1024 and p['per_device_batch_size'] == 128
  assert p['steps_per_epoch'] == 1_281_167 // 1024 == 1251
  assert p['examples_per_epoch'] == 1251 * 1024
  assert p['total_steps'] == 213_000                                    # train_steps
  assert p['peak_learning_rate'] == pytest.approx(0.66)                 # 0.165 * 1024 / 256
  assert p['warmup_steps'] == 0 and p['learning_rate_end_of_warmup'] is None
  # Staircase 0.94 every int(3 * 1251.14) = 3753 steps, as tf.train.exponential_decay there.
  assert set(p['learning_rate_at_fraction']) == {'0.25', '0.5', '0.75', '1.0'}
  for f, rate in p['learning_rate_at_fraction'].items():
    step = min(212_999, math.floor(float(f) * 213_000))
    assert rate == pytest.approx(0.66 * 0.94 ** (step // 3753), rel=1e-5), f
  assert p['eval_every_epochs'] == pytest.approx(2000 / 1251)
  assert p['checkpoint_every_epochs'] == pytest.approx(1.0)
  assert p['num_train_examples'] == 1_281_167 and p['num_eval_examples'] == 50_000
  assert p['warnings'] == [] and p['recipe_verified_batch_size'] == 1024
  json.dumps(p)  # JSON-ready


def test_rates_follow_the_floor():
  c = _config('inception_v3_imagenet.py')
  c.decay_rate = 0.01  # the floor (1e-4 of the peak) binds from the third decay on
  p = plan.make_plan(c, 8)
  assert p['learning_rate_at_fraction']['1.0'] == pytest.approx(0.66e-4, rel=1e-5)
  assert p['learning_rate_at_fraction']['0.25'] == pytest.approx(0.66e-4, rel=1e-5)


def test_paper_variant_plan_warns_at_its_default_batch():
  p = plan.make_plan(_config('inception_v3_imagenet.py', 'paper'), 8, 3619.0)
  assert p['peak_learning_rate'] == pytest.approx(1.44) and p['total_steps'] == 125_100
  assert p['warmup_steps'] == 6255                                      # 5 epochs of 1251
  # The warm-up reaches the peak; the staircase (every 2502 steps) starts after it.
  assert p['learning_rate_end_of_warmup'] == pytest.approx(1.44, rel=1e-5)
  assert p['learning_rate_at_fraction']['0.5'] == pytest.approx(
      1.44 * 0.94 ** ((62_550 - 6255) // 2502), rel=1e-5)
  assert len(p['warnings']) == 1 and 'larger than 32' in p['warnings'][0]
  assert p['train_seconds'] == pytest.approx(125_100 * 1024 / 3619.0)
  text = plan.format_plan(p)
  assert 'warning: global_batch_size=1024 is larger than 32' in text
  assert 'warm-up 6,255 steps' in text and 'images/s' in text


def test_over_batch_warning_in_the_plan():
  c = _config('googlenet_imagenet.py')
  c.global_batch_size = 1024
  p = plan.make_plan(c, 8)
  assert p['peak_learning_rate'] == pytest.approx(0.045 * 4)
  assert len(p['warnings']) == 1 and 'larger than 256' in p['warnings'][0]
  assert plan.make_plan(_config('googlenet_imagenet.py'), 8)['warnings'] == []


def test_digits_default_plan():
  p = plan.make_plan(_config('default.py'), 1)
  assert (p['steps_per_epoch'], p['total_steps'], p['num_epochs']) == (22, 528, 24.0)
  assert p['eval_every_epochs'] is None and p['checkpoint_every_epochs'] == 8.0
  assert p['warmup_steps'] == 22 and p['learning_rate_end_of_warmup'] == pytest.approx(0.04)
  assert p['warnings'] == []
  assert 'evaluation at the end' in plan.format_plan(p)


def test_known_sizes_are_the_datasets_own():
  from inception_jax.data import digits  # pylint: disable=g-import-not-at-top
  assert plan.KNOWN_SPLITS['digits'] == {'train': digits.NUM_TRAIN_EXAMPLES,
                                         'validation': digits.NUM_VALIDATION_EXAMPLES}


def test_processes_split_the_train_split_as_the_pipeline_does():
  c = _config('inception_v3_imagenet.py')
  p = plan.make_plan(c, 32, num_processes=4)
  assert p['steps_per_epoch'] == (1_281_167 // 4) // 256


def test_unprepared_tfds_dataset_is_one_line(tmp_path):
  c = _config('default.py')
  c.dataset = 'mnist'
  c.data_dir = str(tmp_path)
  with pytest.raises(UserError) as e:
    plan.make_plan(c, 1)
  message = str(e.value)
  assert '\n' not in message and 'not prepared' in message
  assert 'inception_jax.tools.prepare' in message and '--num_train_examples' in message
  p = plan.make_plan(c, 1, num_train_examples=60_000, num_eval_examples=10_000)
  assert p['steps_per_epoch'] == 60_000 // 64 and p['split_sizes_from'] == 'sizes given'


def test_bad_device_counts_are_user_errors():
  with pytest.raises(UserError, match='global_batch_size=1024 is not divisible by the 3 devices'):
    plan.make_plan(_config('inception_v3_imagenet.py'), 3)
  with pytest.raises(UserError, match='do not split over 3 processes'):
    plan.make_plan(_config('inception_v3_imagenet.py'), 8, num_processes=3)
  with pytest.raises(UserError, match='images_per_second must be a positive number'):
    plan.make_plan(_config('inception_v3_imagenet.py'), 8, -1.0)


def test_measured_speed_is_the_median_of_the_logged_lines(tmp_path):
  with pytest.raises(UserError, match='no metrics.jsonl'):
    plan.measured_images_per_second(str(tmp_path))
  lines = [{'step': 22, 'kind': 'train', 'images_per_sec': 100.0},
           {'step': 44, 'kind': 'train', 'images_per_sec': 300.0},
           {'step': 44, 'kind': 'eval', 'images_per_sec': 1e9},
           {'step': 66, 'kind': 'train', 'images_per_sec': 200.0}]
  (tmp_path / 'metrics.jsonl').write_text(
      '\n'.join(json.dumps(l) for l in lines) + '\n{"step": 88, "kind": "tr')
  assert plan.measured_images_per_second(str(tmp_path)) == 200.0


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'inception_jax.tools.plan', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL='2'))


def test_cli_json():
  proc = _cli('--config=configs/inception_v3_imagenet.py', '--devices=8', '--json')
  assert proc.returncode == 0, proc.stderr
  p = json.loads(proc.stdout)
  assert (p['steps_per_epoch'], p['total_steps'], p['global_batch_size']) == (1251, 213_000, 1024)
  assert p['peak_learning_rate'] == pytest.approx(0.66)
  assert set(p['learning_rate_at_fraction']) == {'0.25', '0.5', '0.75', '1.0'}
  assert p['eval_every_epochs'] == pytest.approx(2000 / 1251)
  assert p['checkpoint_every_epochs'] == pytest.approx(1.0)


def test_cli_bad_flags_are_one_line():
  for args, pattern in ((['--devices=x'], 'expected an integer for --devices'),
                        (['--config.learnig_rate=1'], "Did you mean 'learning_rate'"),
                        (['--images_per_second=5', '--workdir=/tmp'], 'not both')):
    proc = _cli(*args)
    lines = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and pattern in lines[0] and 'Traceback' not in proc.stderr, proc.stderr
