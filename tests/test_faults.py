"""Faults: damaged checkpoints, full disks and NaNs in-process; kills, preemption, a disk filling
up and a lost process through the real command line.

In-process tests run the real loop with TinyNet on the digits and share one compiled program
(the loop's program cache) with tests/test_checkpoint.py. Subprocess tests run
``tests/fault_helpers.py`` (train.py plus a registered TinyNet and self-inflicted faults) with a
shared persistent compilation cache, so a run costs its interpreter start and imports.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import signal
import subprocess
import sys
from concurrent import futures

import jax
import numpy as np
import pytest
from _training_helpers import TINYNET, TinyNet, loop_options, registered, tiny_config
import fault_helpers as fh

from inception_jax import errors
from inception_jax.errors import UserError
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import integrity
from inception_jax.training import loop

pytestmark = pytest.mark.slow  # all but the few trivial tests train, in-process or in subprocesses

NUM_DEVICES = 2   # as tests/test_checkpoint.py: the same compiled programs


def _train(workdir, config=None, **kwargs):
  return loop.train_and_evaluate(config or tiny_config(), str(workdir), loop_options(
      model=TinyNet(), num_devices=NUM_DEVICES, **kwargs))


def _same(a, b) -> bool:
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return (jax.tree.structure(a) == jax.tree.structure(b)
          and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb)))


def _data_files(directory) -> list[str]:
  """The array data files (TensorStore OCDBT's ``d/`` files) under ``directory``."""
  return [f for f in glob.glob(os.path.join(directory, '**', 'd', '*'), recursive=True)
          if os.path.isfile(f)]


def _steps(workdir) -> list[str]:
  return sorted(os.listdir(ckpt_lib.checkpoint_dir(workdir)), key=lambda n: (len(n), n))


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """An uninterrupted 8-step run: checkpoints at 3, 6 and 8."""
  return _train(tmp_path_factory.mktemp('faults') / 'reference')


def _copy(reference, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(reference.workdir, workdir)
  return workdir


# ----------------------------------------------------------------------------- damaged checkpoints


def test_metadata_records_per_item_checksums(reference):
  meta = fh.read_metadata(reference.workdir, 8)
  assert set(meta['checksums']) == {'step', 'params', 'batch_stats', 'opt_state', 'ema_params',
                                    'rng', 'nonfinite_step', 'nonfinite_what'}
  assert meta['checksums']['params'] == ckpt_lib.state_checksum(reference.state.params)
  assert meta['checksum'] == ckpt_lib.state_checksum(reference.state)


def _remove_data_files(step_dir):
  """Removes every array data file: how OCDBT splits the arrays over them varies from save to
  save, so removing any one file might leave nothing that a restore reads."""
  for path in _data_files(os.path.join(step_dir, 'state')):
    os.remove(path)


def _flip_byte(step_dir):
  """Flips one bit of array data so that ``params`` restore without error but with another value:
  damage only the checksum can tell.

  OCDBT data files hold chunk bytes and array metadata side by side, and how the arrays split
  over the files varies from save to save, so no fixed file or offset is certain to hold
  ``params``: bytes of the data files (largest first) are tried until a flip changes them.
  """
  state_dir = os.path.join(step_dir, 'state')
  files = sorted(_data_files(state_dir), key=os.path.getsize, reverse=True)
  checkpointer = ckpt_lib.Checkpointer(os.path.dirname(step_dir), read_only=True)
  step = int(os.path.basename(step_dir))
  try:
    good = ckpt_lib.state_checksum(checkpointer.restore_raw(step)['params'])
    for path in files:
      data = bytearray(open(path, 'rb').read())
      for offset in range(len(data) // 2, len(data) + len(data) // 2, 97):
        offset %= len(data)
        data[offset] ^= 0x10
        with open(path, 'wb') as f:
          f.write(data)
        try:
          if ckpt_lib.state_checksum(checkpointer.restore_raw(step)['params']) != good:
            return
        except Exception:  # pylint: disable=broad-except
          pass  # metadata or a frame header: unreadable, not the silent change wanted here
        data[offset] ^= 0x10
        with open(path, 'wb') as f:
          f.write(data)
    raise AssertionError(f'no byte of the data files in {state_dir} holds params')
  finally:
    checkpointer.close()


def _remove_metadata(step_dir):
  shutil.rmtree(os.path.join(step_dir, 'metadata'))


def _half_written(step_dir):
  # A save killed before its commit: Orbax's temporary name, part of the files.
  tmp = f'{step_dir}.orbax-checkpoint-tmp-1234567'
  os.rename(step_dir, tmp)
  _remove_data_files(tmp)


@pytest.mark.parametrize('damage,reason', [
    (_remove_data_files, 'its state is unreadable'),
    (_flip_byte, 'checksum mismatch in '),
    (_remove_metadata, 'its metadata is missing'),
    (_half_written, None),
])
def test_damaged_newest_checkpoint_is_moved_aside_and_training_resumes_from_the_last_good(
    reference, tmp_path, capsys, damage, reason):
  workdir = _copy(reference, tmp_path)
  damage(os.path.join(ckpt_lib.checkpoint_dir(workdir), '8'))
  capsys.readouterr()
  resumed = _train(workdir)
  out = capsys.readouterr().out
  assert resumed.resumed_from == 6 and resumed.step == 8
  assert _same(resumed.state, reference.state)          # bit for bit
  qdir = integrity.quarantine_dir(workdir)
  moved = os.listdir(qdir)
  if reason is None:
    assert 'warning: the save of step 8 never committed' in out
    assert '8-unfinished-save' in moved
  else:
    assert f'warning: checkpoint step 8 in {ckpt_lib.checkpoint_dir(workdir)} is damaged ' \
           f'({reason}' in out
    assert any(m.startswith('8-') for m in moved) and 'resuming from step 6' in out
  assert 'resuming from the checkpoint at step 6' in out
  assert _steps(workdir) == ['3', '6', '8']             # 8 written again by the resumed run
  with open(os.path.join(qdir, integrity.QUARANTINE_LOG)) as f:
    assert len(f.readlines()) == 1


def test_flipped_byte_is_caught_by_the_inference_loader_too(reference, tmp_path):
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top
  workdir = _copy(reference, tmp_path)
  _flip_byte(os.path.join(ckpt_lib.checkpoint_dir(workdir), '8'))
  with registered('tinynet', TINYNET):
    loaded = restore.load_for_inference(workdir)
    assert loaded.meta['step'] == 6
    with pytest.raises(UserError, match='damaged: checksum mismatch in params'):
      restore.load_for_inference(os.path.join(ckpt_lib.checkpoint_dir(workdir), '8'))


def test_init_from_refuses_a_damaged_checkpoint(reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  _flip_byte(os.path.join(ckpt_lib.checkpoint_dir(workdir), '8'))
  with pytest.raises(UserError, match=r'checkpoints/8 is damaged \(checksum mismatch in params\)'):
    ckpt_lib.load_pretrained(str(workdir))
  _remove_data_files(os.path.join(ckpt_lib.checkpoint_dir(workdir), '8'))
  with pytest.raises(UserError, match=r'checkpoints/8 is damaged \(ValueError: '):
    ckpt_lib.load_pretrained(str(workdir))


def test_when_every_checkpoint_is_damaged_nothing_is_moved_and_the_run_stops(reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  for step in ('3', '6', '8'):
    _remove_metadata(os.path.join(ckpt_lib.checkpoint_dir(workdir), step))
  with pytest.raises(UserError, match=r'every checkpoint in .* is damaged \(step 8: its metadata '
                                      r'is missing; step 6: .*nothing was moved'):
    _train(workdir)
  assert _steps(workdir) == ['3', '6', '8']
  assert not os.path.exists(integrity.quarantine_dir(workdir))


def test_metadata_without_a_checksum_is_damaged(reference, tmp_path):
  workdir = _copy(reference, tmp_path)
  checkpointer = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), read_only=True)
  try:
    with pytest.raises(integrity.Damaged, match='checksum mismatch in params'):
      path = os.path.join(ckpt_lib.checkpoint_dir(workdir), '8', 'metadata', 'metadata')
      meta = fh.read_metadata(workdir, 8)
      meta['checksums']['params'] = meta['checksums']['batch_stats']
      _write_json(path, meta)
      integrity.verify_step(checkpointer, 8, jax.eval_shape(lambda: reference.state), None, 'x')
    del meta['checksums'], meta['checksum']
    _write_json(path, meta)
    with pytest.raises(integrity.Damaged, match='no checksum'):
      integrity.verify_step(checkpointer, 8, jax.eval_shape(lambda: reference.state), None, 'x')
  finally:
    checkpointer.close()


def _write_json(path, obj):
  import json  # pylint: disable=g-import-not-at-top
  with open(path, 'w') as f:
    json.dump(obj, f)


# ----------------------------------------------------------------------------- full disk


def test_disk_full_at_a_save_keeps_the_committed_checkpoints_and_a_rerun_resumes(
    reference, tmp_path, monkeypatch, capsys):
  """Simulated in-process: the commit of step 6 (in Orbax's background thread) raises ENOSPC."""
  from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top
  original = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize(self, *args, **kwargs):
    if self.get_final().name == '6':
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.get()))
    return await original(self, *args, **kwargs)

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, 'finalize', finalize)
  workdir = tmp_path / 'run'
  with pytest.raises(ckpt_lib.CheckpointWriteError) as e:
    _train(workdir)
  message = str(e.value)
  assert '\n' not in message
  assert message.startswith('could not write the checkpoint of step 6 to ')
  assert 'No space left on device' in message and 'step 3, is intact' in message
  assert 'run the same command again to resume' in message
  directory = ckpt_lib.checkpoint_dir(workdir)
  assert [n for n in os.listdir(directory) if n.isdigit()] == ['3']
  checkpointer = ckpt_lib.Checkpointer(directory, read_only=True)
  try:
    assert checkpointer.verify(3, jax.eval_shape(lambda: reference.state)) is None
  finally:
    checkpointer.close()

  monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, 'finalize', original)
  capsys.readouterr()
  resumed = _train(workdir)
  out = capsys.readouterr().out
  assert resumed.resumed_from == 3 and _same(resumed.state, reference.state)
  assert 'warning: the save of step 6 never committed' in out


def test_full_disk_is_refused_before_training(tmp_path, monkeypatch):
  usage = shutil.disk_usage(tmp_path)._replace(free=4096)
  monkeypatch.setattr(integrity.shutil, 'disk_usage', lambda path: usage)
  with pytest.raises(UserError, match=r'has 0\.0 MiB free, but one checkpoint of this model needs '
                                      r'about .*; free some space'):
    _train(tmp_path / 'run')
  assert not os.path.exists(ckpt_lib.checkpoint_dir(tmp_path / 'run'))


# ----------------------------------------------------------------------------- NaN


def test_nan_at_a_checkpoint_step_writes_no_checkpoint_of_the_bad_state(tmp_path, capsys):
  """Log only at the end: the check before the save of step 6 is what stops the run."""
  def poison(index, batch):
    if index == 5:  # the batch of step 6, a checkpoint step
      # uint8 pixels cannot be inf; float images are taken as normalised model input as they are.
      batch = dict(batch, label=batch['label'],
                   image=np.full(batch['image'].shape, np.inf, np.float32))
    return batch

  config = tiny_config(log_every_steps=100)
  code = None
  try:
    errors.run_cli(lambda: _train(tmp_path, config=config, transform_batch=poison))
  except SystemExit as e:
    code = e.code
  err = capsys.readouterr().err
  assert code == errors.EXIT_USER_ERROR
  assert fh.last_line(err).startswith('error: non-finite loss and gradients at step 6:')
  assert 'the last good checkpoint is step 3' in err
  assert _steps(tmp_path) == ['3']
  raw = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(tmp_path), read_only=True)
  try:
    assert raw.read_metadata(3)['step'] == 3
  finally:
    raw.close()


# ----------------------------------------------------------------------------- kills (subprocesses)


def _compile_cache_env(tmp_path_factory) -> dict[str, str]:
  return {'JAX_COMPILATION_CACHE_DIR': str(tmp_path_factory.getbasetemp() / 'jax_cache'),
          'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
          'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '-1'}


# One workdir, one link per fault: each run is killed (or fails) at its point, the next run of the
# same command resumes from the last committed checkpoint and is itself killed later on. 12 steps,
# a checkpoint every 2, an evaluation every 4, keep 3.
CHAIN = [
    ('step:3', 'SIGKILL between steps (after step 3)'),
    ('save:4', 'SIGKILL in the asynchronous save of step 4, before its commit'),
    ('eval:1', 'SIGKILL during an evaluation (step 4)'),
    ('commit:6', 'SIGKILL right after the commit of step 6'),
    ('sigterm:7', 'SIGTERM (preemption) after step 7'),
    ('fsize:8', 'the disk fills up after the commit of step 8'),
    ('savestart:10', 'SIGKILL with the save of step 10 in flight'),
]


@pytest.mark.slow
def test_killed_runs_resume_from_the_last_commit_and_end_bit_identical(tmp_path,
                                                                       tmp_path_factory):
  cache = _compile_cache_env(tmp_path_factory)
  pool = futures.ThreadPoolExecutor(1)
  reference = pool.submit(fh.run_train, str(tmp_path / 'reference'), extra_env=cache)
  workdir = str(tmp_path / 'chain')
  history = []
  for fault, what in CHAIN + [(None, 'no fault: the run completes')]:
    before = fh.committed_steps(workdir)
    proc = fh.run_train(workdir, fault=fault, extra_env=cache)
    context = f'{what}\n{fh.describe(proc)}'
    history.append((fault, before, fh.resumed_from(proc.stdout), fh.committed_steps(workdir)))
    # Resumed from the newest committed step there was (a fresh start when there was none).
    assert fh.resumed_from(proc.stdout) == (before[-1] if before else None), context
    assert 'Traceback' not in proc.stderr, context
    if fault is None:
      assert proc.returncode == 0, context
    elif fault.startswith('sigterm'):
      assert proc.returncode == loop.PREEMPTED_EXIT_CODE, context
      assert 'preempted: saved step 7 to ' in proc.stdout and 'run the same command again' in \
          proc.stdout, context
      assert fh.committed_steps(workdir)[-1] == 7, context     # the step reached, committed
    elif fault.startswith('fsize'):
      assert proc.returncode == errors.EXIT_USER_ERROR, context
      line = fh.last_line(proc.stderr)
      assert line.startswith('error: could not write the checkpoint of step 10'), context
      assert 'File too large' in line and 'step 8, is intact' in line, context
    else:
      assert fh.killed(proc), context
    if fault == 'commit:6':
      assert 6 in fh.committed_steps(workdir), context
    if fault == 'eval:1':
      assert 'warning: the save of step 4 never committed' in proc.stdout, context
  ref = reference.result()
  assert ref.returncode == 0, fh.describe(ref)
  pool.shutdown()
  # Bit for bit: the sha256 of every item of the final state, and the final evaluation.
  final_ref = fh.read_metadata(str(tmp_path / 'reference'), 12)
  final = fh.read_metadata(workdir, 12)
  assert final['checksums'] == final_ref['checksums'], history
  assert fh.last_line(proc.stdout).split(';')[0] == fh.last_line(ref.stdout).split(';')[0]
  # Every unfinished save was moved aside, none deleted.
  moved = sorted(os.listdir(integrity.quarantine_dir(workdir)))
  assert '4-unfinished-save' in moved and '10-unfinished-save' in moved, (moved, history)


def test_a_resume_loads_the_compiled_step_from_the_workdir_cache(tmp_path):
  """train.py keeps JAX's persistent compilation cache in <workdir>/xla_cache: the rerun after
  a kill loads the (jit + shard_map) training step instead of compiling it again."""
  env = {'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
         'JAX_DEBUG_LOG_MODULES': 'jax._src.compiler'}
  workdir = str(tmp_path / 'run')
  flags = ('--config.parallel=shard_map', '--config.num_train_steps=6')
  first = fh.run_train(workdir, *flags, fault='step:5', extra_env=env)
  assert fh.killed(first), fh.describe(first)
  cached = os.listdir(os.path.join(workdir, 'xla_cache'))
  assert any(name.startswith('jit_train_step-') for name in cached), cached
  second = fh.run_train(workdir, *flags, extra_env=env)
  assert second.returncode == 0 and fh.resumed_from(second.stdout) in (2, 4), fh.describe(second)
  assert "Persistent compilation cache hit for 'jit_train_step'" in second.stderr


def test_compilation_cache_location():
  from inception_jax.training import compilation_cache  # pylint: disable=g-import-not-at-top
  assert compilation_cache.cache_dir_for(None, '/runs/a', 1) == '/runs/a/xla_cache'
  assert compilation_cache.cache_dir_for('/cache', '/runs/a', 1) == '/cache'
  assert compilation_cache.cache_dir_for('', '/runs/a', 1) is None            # turned off
  assert compilation_cache.cache_dir_for(None, '/runs/a', 2) is None          # multi-process
  assert compilation_cache.cache_dir_for(None, 'gs://bucket/run', 1) is None  # remote workdir


# ----------------------------------------------------------------------------- a lost process


def _free_port() -> int:
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _two_processes(workdir, faults, env, timeout=240):
  """Both processes of a jax.distributed job (one CPU device each) on 127.0.0.1."""
  port = _free_port()
  procs = []
  for i, fault in enumerate(faults):
    extra = dict(env)
    if fault:
      extra[fh.FAULT_ENV] = fault
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(fh.TESTS, 'fault_helpers.py'),
         f'--config={os.path.join(fh.TESTS, "fault_config.py")}', f'--workdir={workdir}',
         '--config.num_train_steps=8', f'--coordinator_address=127.0.0.1:{port}',
         '--num_processes=2', f'--process_id={i}', '--heartbeat_timeout=15'],
        cwd=fh.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=fh.env(**extra)))
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)   # a hang fails the test here
      results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return results


@pytest.mark.parametrize('error,peer', [
    # What a gloo all-gather raises when its peer was killed: a ValueError from the dispatch.
    (ValueError('UNKNOWN: Gloo AllGather failed: [pair.cc:547] Connection closed by peer'), True),
    (RuntimeError('UNAVAILABLE: Task 1 heartbeat timeout'), True),
    (ValueError('image_size must be positive'), False),  # a mistake, not a dead process
    (KeyError('gloo'), False),                           # not a type a collective raises
])
def test_a_dead_peer_is_told_from_other_errors(monkeypatch, tmp_path, error, peer):
  assert integrity.peer_failure_message(error, str(tmp_path)) is None  # one process: never
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  message = integrity.peer_failure_message(error, str(tmp_path))
  assert (message is not None) == peer
  if peer:
    assert 'another process of this job failed' in message and 'all 2 processes' in message
    assert '\n' not in message


@pytest.mark.slow
def test_killing_one_of_two_processes_stops_the_other_with_an_error_and_both_resume(
    tmp_path, tmp_path_factory):
  env = _compile_cache_env(tmp_path_factory)
  workdir = str(tmp_path / 'run')
  survivor, victim = _two_processes(workdir, [None, 'step:5'], env)
  assert fh.killed(victim), fh.describe(victim)
  # The survivor notices at the next collective, says so in one line and exits (no hang).
  context = fh.describe(survivor)
  assert survivor.returncode == errors.EXIT_USER_ERROR, context
  line = fh.last_line(survivor.stderr)
  assert line.startswith('error: process 0 of 2: another process of this job failed or was '
                         'killed'), context
  committed = fh.committed_steps(workdir)
  assert committed and f'the last committed checkpoint is step {committed[-1]}' in line, context
  assert 'start all 2 processes again with the same command' in line, context
  assert 'Traceback' not in survivor.stderr, context

  first, second = _two_processes(workdir, [None, None], env)
  for proc in (first, second):
    assert proc.returncode == 0, fh.describe(proc)
  assert fh.resumed_from(first.stdout) == committed[-1], fh.describe(first)
  assert fh.committed_steps(workdir)[-1] == 8
