"""The learning-rate schedule (``optimizers.create_learning_rate_fn``): a warm-up reaches the
stated peak at its last step, and the decay starts after it (the decay schedule shifted by the
warm-up length); the floor holds throughout. No model is compiled here."""

from __future__ import annotations

import os

import ml_collections
import pytest

from inception_jax.training import plan
from inception_jax.tools import sweep
from inception_jax.training import optimizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPE = 10  # steps per epoch


def _fn(total_steps=400, **fields):
  values = dict(learning_rate=0.1, base_batch_size=256, global_batch_size=1024,
                lr_schedule='staircase_exponential', decay_rate=0.5, decay_epochs=3.0,
                warmup_epochs=5.0, min_learning_rate_fraction=0.0)
  values.update(fields)
  return optimizers.create_learning_rate_fn(ml_collections.ConfigDict(values), SPE, total_steps)


def test_warmup_reaches_the_peak_at_its_last_step():
  fn = _fn()
  peak = 0.4  # 0.1 x 1024 / 256
  warmup = 50
  for step in range(warmup):
    assert float(fn(step)) == pytest.approx(peak * (step + 1) / warmup, rel=1e-6), step
  assert float(fn(warmup - 1)) == pytest.approx(peak, rel=1e-6)
  assert max(float(fn(s)) for s in range(400)) == pytest.approx(peak, rel=1e-6)


def test_staircase_decays_first_decay_epochs_after_the_warmup():
  fn = _fn()
  peak, warmup, decay = 0.4, 50, 30
  for step in range(warmup, warmup + decay):
    assert float(fn(step)) == pytest.approx(peak, rel=1e-6), step
  assert float(fn(warmup + decay)) == pytest.approx(peak * 0.5, rel=1e-6)
  assert float(fn(warmup + 2 * decay - 1)) == pytest.approx(peak * 0.5, rel=1e-6)
  assert float(fn(warmup + 2 * decay)) == pytest.approx(peak * 0.25, rel=1e-6)


def test_without_warmup_the_staircase_counts_from_step_0():
  fn = _fn(warmup_epochs=0.0)
  assert float(fn(0)) == pytest.approx(0.4) and float(fn(29)) == pytest.approx(0.4)
  assert float(fn(30)) == pytest.approx(0.2)


def test_floor_holds_in_the_warmup_and_after_the_decay():
  fn = _fn(min_learning_rate_fraction=0.1)
  floor = 0.04
  assert float(fn(0)) == pytest.approx(floor)            # 0.4 / 50 = 0.008 < floor
  assert float(fn(49)) == pytest.approx(0.4)
  assert float(fn(50 + 3 * 30)) == pytest.approx(0.05)   # three halvings: above the floor
  assert float(fn(50 + 4 * 30)) == pytest.approx(floor)  # 0.025 -> floor
  assert float(fn(399)) == pytest.approx(floor)


def test_cosine_runs_over_the_steps_after_the_warmup():
  fn = _fn(lr_schedule='cosine', total_steps=250)
  assert float(fn(49)) == pytest.approx(0.4, rel=1e-6)
  assert float(fn(50)) == pytest.approx(0.4, rel=1e-6)
  assert float(fn(150)) == pytest.approx(0.2, rel=1e-6)  # half of the 200 steps after warm-up
  assert float(fn(250)) == pytest.approx(0.0, abs=1e-7)
  floored = _fn(lr_schedule='cosine', total_steps=250, min_learning_rate_fraction=0.01)
  assert float(floored(250)) == pytest.approx(0.004)


def test_constant_schedule_with_warmup():
  fn = _fn(lr_schedule='constant')
  assert float(fn(0)) == pytest.approx(0.008) and float(fn(49)) == pytest.approx(0.4)
  assert float(fn(399)) == pytest.approx(0.4)


def test_plans_warm_up_to_the_advertised_peak():
  """Both ``:paper`` variants warm up over 5 epochs; the plan's end-of-warm-up rate is the peak."""
  for name, peak in (('inception_v3_imagenet.py:paper', 1.44),
                     ('googlenet_imagenet.py:paper', 0.32), ('googlenet_imagenet.py', 0.045)):
    p = plan.make_plan(sweep.load_config_file(os.path.join(REPO, 'configs', name)), 8)
    assert p['peak_learning_rate'] == pytest.approx(peak), name
    assert p['learning_rate_end_of_warmup'] == pytest.approx(peak, rel=1e-6), name
