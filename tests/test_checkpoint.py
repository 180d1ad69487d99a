"""Checkpoints through the real loop: round trip, SIGTERM, resume == uninterrupted, NaN, refusal.

TinyNet (tests/_training_helpers.py) on the bundled digits: every run shares one set of compiled
programs (the suite's ProgramCache, tests/_training_helpers.py), so each run costs little more
than its input pipeline.
"""

import json
import os
import signal
import threading

import jax
import numpy as np
import pytest
from _training_helpers import TinyNet, loop_options, tiny_config

from inception_jax.errors import UserError
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import loop

pytestmark = pytest.mark.slow  # every test but one trains through the real loop

NUM_DEVICES = 2


def _train(workdir, config=None, model=None, **kwargs):
  return loop.train_and_evaluate(config or tiny_config(), str(workdir), loop_options(
      model=model or TinyNet(), num_devices=NUM_DEVICES, **kwargs))


def _sigterm_at(step_to_stop):
  def hook(step):
    if step == step_to_stop:
      os.kill(os.getpid(), signal.SIGTERM)
  return hook


def _leaves_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb))


def _no_nan(name):
  raise AssertionError(f'metrics.jsonl holds {name}, which is not JSON')


def _read_metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line, parse_constant=_no_nan) for line in f]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """An uninterrupted run, and the same run stopped by SIGTERM after step 4 and resumed."""
  base = tmp_path_factory.mktemp('runs')
  full = _train(base / 'full')
  interrupted = _train(base / 'interrupted', hooks=[_sigterm_at(4)])
  resumed = _train(base / 'interrupted')
  return full, interrupted, resumed


def test_sigterm_saves_and_commits_the_current_step(runs):
  _, interrupted, _ = runs
  assert interrupted.preempted and interrupted.step == 4 and interrupted.final_eval is None
  directory = ckpt_lib.checkpoint_dir(interrupted.workdir)
  assert sorted(os.listdir(directory)) == ['3', '4', '6', '8']  # 6 and 8 from the resumed run
  checkpointer = ckpt_lib.Checkpointer(directory, read_only=True)
  try:
    meta = checkpointer.read_metadata(4)
    assert meta['step'] == 4 and meta['model'] == 'tinynet' and meta['num_classes'] == 10
    assert meta['image_size'] == 12 and meta['checksum'].startswith('sha256:')
  finally:
    checkpointer.close()


def test_resumed_run_equals_uninterrupted_run_bit_for_bit(runs):
  full, _, resumed = runs
  assert resumed.resumed_from == 4 and resumed.step == full.step == 8
  assert _leaves_equal(resumed.state, full.state)
  assert resumed.final_eval == full.final_eval


def test_metrics_jsonl_has_each_step_once_and_eval_covers_the_split(runs):
  full, _, resumed = runs
  for run in (full, resumed):
    lines = _read_metrics(run.workdir)
    train = [l for l in lines if l['kind'] == 'train']
    assert [l['step'] for l in train] == [2, 4, 6, 8]
    for line in train:
      assert {'loss', 'top1', 'top5', 'main_loss', 'aux_loss', 'learning_rate',
              'grad_norm'} <= set(line)
    evals = [l for l in lines if l['kind'] == 'eval']
    # 360 validation images with eval batches of 64: the padded last batch is masked.
    assert [(l['step'], l['num_examples']) for l in evals] == [(8, 360)]
    assert 0.0 <= evals[0]['top1'] <= evals[0]['top5'] <= 1.0
  assert full.final_eval['num_examples'] == 360
  assert os.path.exists(os.path.join(full.workdir, 'config.json'))


def test_metrics_jsonl_gives_no_speed_for_a_window_of_only_the_compiling_step(tmp_path):
  """The first step compiles and is not timed: a log line after it alone has no speed to give."""
  run = _train(tmp_path, config=tiny_config(log_every_steps=1))
  train = [l for l in _read_metrics(run.workdir) if l['kind'] == 'train']
  assert [l['step'] for l in train] == list(range(1, 9))
  assert 'images_per_sec' not in train[0]
  assert all(l['images_per_sec'] > 0 for l in train[1:])


def test_checkpoint_round_trip_and_checksum(runs, tmp_path):
  full, _, _ = runs
  state = full.state
  checkpointer = ckpt_lib.Checkpointer(tmp_path / 'ckpt', keep=2)
  config = tiny_config()
  meta = ckpt_lib.build_metadata(config, state, num_classes=10, total_steps=8)
  checkpointer.save(state, meta)
  checkpointer.wait()
  restored = checkpointer.restore(8, jax.eval_shape(lambda: state))
  assert _leaves_equal(restored, state)
  assert checkpointer.read_metadata(8)['checksum'] == ckpt_lib.state_checksum(state)
  assert checkpointer.verify(8, jax.eval_shape(lambda: state)) is None
  # One changed value changes the checksum.
  damaged = state.replace(step=np.asarray(state.step) + 1)
  assert ckpt_lib.state_checksum(damaged) != meta['checksum']
  checkpointer.close()


def test_refuses_a_workdir_holding_another_architecture(runs):
  full, _, _ = runs
  with pytest.raises(UserError, match='holds a checkpoint of tinynet'):
    _train(full.workdir, model=TinyNet(width=4))


def test_changed_learning_rate_is_allowed_with_a_warning(runs, tmp_path, capsys):
  full, _, _ = runs
  config = tiny_config(learning_rate=0.01)
  result = _train(full.workdir, config=config)  # already at its last step: evaluates only
  assert result.step == 8 and result.resumed_from == 8
  out = capsys.readouterr().out
  assert 'warning: learning_rate changed from 0.05 to 0.01' in out
  # The final evaluation is printed once, as the final line (not also as an 'eval at' line).
  assert out.count('final evaluation at step 8: ') == 1 and 'eval at step 8:' not in out


def test_nonfinite_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path):
  def poison(index, batch):
    if index == 4:  # the batch of step 5
      # uint8 pixels cannot be NaN; float images are taken as normalised model input as they are.
      batch = dict(batch, image=np.full(batch['image'].shape, np.nan, np.float32))
    return batch

  with pytest.raises(loop.NonFiniteError,
                     match=r'non-finite loss and gradients at step 5:.*last good checkpoint is '
                           r'step 3') as raised:
    _train(tmp_path, transform_batch=poison)
  # While the error (and so the loop's frame) is still held, as a notebook or a caller holds it,
  # no prefetch thread is left running with batches on the devices.
  assert raised.value.__traceback__ is not None
  assert not [t for t in threading.enumerate() if t.name == 'inception_jax-prefetch']
  directory = ckpt_lib.checkpoint_dir(tmp_path)
  assert sorted(os.listdir(directory)) == ['3']
  checkpointer = ckpt_lib.Checkpointer(directory, read_only=True)
  try:
    meta = checkpointer.read_metadata(3)
    assert meta['step'] == 3
    raw = checkpointer.restore_raw(3)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(raw)
               if np.issubdtype(x.dtype, np.floating))
  finally:
    checkpointer.close()


def test_init_from_loads_matching_parameters(runs):
  full, _, _ = runs
  params, batch_stats, meta = ckpt_lib.load_pretrained(full.workdir)
  assert meta['step'] == 8 and batch_stats
  assert _leaves_equal(params, jax.tree.map(np.asarray, full.state.params))
  # A model with another classifier size: convolutions load, the heads stay initialised.
  other = jax.eval_shape(lambda: TinyNet(num_classes=7).init(
      {'params': jax.random.PRNGKey(0)}, np.zeros((1, 12, 12, 3)), train=True))['params']
  other = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), other)
  merged, loaded, kept = ckpt_lib.merge_pretrained(other, params)
  assert sorted(kept) == ["['aux1']['bias']", "['aux1']['kernel']", "['fc']['bias']",
                          "['fc']['kernel']"]
  assert "['conv1_conv']['kernel']" in loaded
  np.testing.assert_array_equal(merged['conv1_conv']['kernel'], params['conv1_conv']['kernel'])
  with pytest.raises(UserError, match='holds no checkpoint'):
    ckpt_lib.load_pretrained(os.path.join(full.workdir, 'nowhere'))


def test_unwritable_workdir_is_refused_before_training(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a directory')
  with pytest.raises(UserError, match='is not writable'):
    _train(blocker / 'workdir')


def test_init_from_through_the_loop(runs, tmp_path, capsys):
  full, _, _ = runs
  config = tiny_config(num_train_steps=8)
  config.init_from = full.workdir
  result = _train(tmp_path, config=config)
  out = capsys.readouterr().out
  n = len(jax.tree.leaves(full.state.params))
  assert f'init_from {full.workdir}: loaded {n} parameter arrays from tinynet at step 8' in out
  assert result.step == 8 and result.resumed_from is None
  # Rerunning the same workdir resumes its own checkpoint rather than loading init_from again.
  again = _train(tmp_path, config=config)
  assert again.resumed_from == 8 and 'parameter arrays' not in capsys.readouterr().out


def test_unset_overrides_do_not_count_as_a_change_but_a_set_one_does():
  """Metadata keeps unset model_overrides as None, and a process that registers another model has
  more of them; only the values that were set are compared."""
  base = {'format': ckpt_lib.FORMAT, 'model': 'googlenet', 'num_classes': 10, 'architecture': 'a',
          'state_structure': 's', 'step': 3}
  saved = dict(base, model_overrides={'width_multiplier': 0.5, 'stem': None})
  same = dict(base, model_overrides={'width_multiplier': 0.5, 'stem': None, 'hidden': None})
  assert ckpt_lib.check_compatible(saved, same, 'w') == []
  changed = dict(base, model_overrides={'width_multiplier': 0.25, 'hidden': None})
  (warning,) = ckpt_lib.check_compatible(saved, changed, 'w')
  assert warning == ("model_overrides changed from {'width_multiplier': 0.5} to "
                     "{'width_multiplier': 0.25} since the checkpoint at step 3")
