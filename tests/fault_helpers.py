r"""Fault injection for the reliability tests: train.py with a tiny model, killed where we say.

Run as a script, this is ``train.py`` itself (same flags, same ``main``, same exit statuses) with
two test-only additions, both inert unless asked for:

* ``tinynet`` is registered in the model registry (TinyNet from ``_training_helpers``: it compiles
  in about a second, where GoogLeNet takes a minute on two CPU cores), so
  ``--config=tests/fault_config.py`` runs the real loop, checkpoints and evaluation cheaply;
* ``INCEPTION_JAX_FAULT=POINT[:N]`` makes the process kill itself at a named point, exactly as an
  out-of-memory killer, a power cut or a scheduler's SIGKILL would::

    step:N        SIGKILL after step N was dispatched (between steps; the step may not be done)
    save:N        SIGKILL inside the asynchronous save of step N, after its files are written and
                  before the commit renames ``N.orbax-checkpoint-tmp-*`` to ``N``
    savestart:N   SIGKILL right after the save of step N was started (writes still in flight)
    commit:N      SIGKILL right after step N was committed (renamed into place)
    eval:N        SIGKILL in the middle of the N-th evaluation of this process (at its third batch)
    restore       SIGKILL while resuming, after the checkpoint was read and before training
    sigterm:N     SIGTERM (preemption) after step N: the loop saves step N and exits 143
    fsize:N       the disk "fills up" right after the commit of step N: every later write of a
                  file past 4 KiB fails with EFBIG (RLIMIT_FSIZE, a real kernel-level failure
                  that reaches Orbax and TensorStore like ENOSPC would)

Usage: ``python tests/fault_helpers.py --config=tests/fault_config.py --workdir=DIR [...]``.
The module also holds the helpers the tests share (running it, reading results).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from typing import Any, Sequence

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
FAULT_ENV = 'INCEPTION_JAX_FAULT'


def _die(sig=signal.SIGKILL, what=''):
  sys.stdout.flush()
  sys.stderr.write(f'fault_helpers: sending {signal.Signals(sig).name} to myself: {what}\n')
  sys.stderr.flush()
  os.kill(os.getpid(), sig)
  if sig == signal.SIGKILL:
    signal.pause()


def install_fault(spec: str) -> None:
  """Patches the loop / checkpointer so the process kills itself at ``spec`` (module docstring)."""
  point, _, arg = spec.partition(':')
  n = int(arg) if arg else 0
  from inception_jax.training import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from inception_jax.training import loop  # pylint: disable=g-import-not-at-top

  if point in ('step', 'sigterm'):
    sig = signal.SIGKILL if point == 'step' else signal.SIGTERM
    original_train = loop.train_and_evaluate

    def train(config, workdir, options=None):
      def hook(step):
        if step == n:
          _die(sig, f'after step {step}')
      options = options or loop.LoopOptions()
      options = dataclasses.replace(options, hooks=tuple(options.hooks) + (hook,))
      return original_train(config, workdir, options)
    loop.train_and_evaluate = train
  elif point in ('save', 'commit', 'fsize'):
    from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top
    original_finalize = atomicity.AtomicRenameTemporaryPath.finalize
    if point == 'fsize':
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death; main thread only

    async def finalize(self, *args, **kwargs):
      is_step = self.get_final().name == str(n)
      if is_step and point == 'save':
        _die(what=f'before the commit of step {n}')
      await original_finalize(self, *args, **kwargs)
      if is_step and point == 'commit':
        _die(what=f'after the commit of step {n}')
      if is_step and point == 'fsize':
        import resource  # pylint: disable=g-import-not-at-top
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        sys.stderr.write(f'fault_helpers: files are limited to 4 KiB from now on\n')
    atomicity.AtomicRenameTemporaryPath.finalize = finalize
  elif point == 'savestart':
    original_save = ckpt_lib.Checkpointer.save

    def save(self, host_state, metadata):
      original_save(self, host_state, metadata)
      if int(metadata['step']) == n:
        _die(what=f'right after starting the save of step {n}')
    ckpt_lib.Checkpointer.save = save
  elif point == 'eval':
    original_evaluate = loop.evaluate
    calls = [0]

    def evaluate(eval_fn, state, batches, dp):
      calls[0] += 1
      if calls[0] == n:
        def kill_after_first(batches):
          for i, batch in enumerate(batches):
            if i == 2:
              _die(what=f'during evaluation {n}')
            yield batch
        batches = kill_after_first(batches)
      return original_evaluate(eval_fn, state, batches, dp)
    loop.evaluate = evaluate
  elif point == 'restore':
    original_restore = ckpt_lib.Checkpointer.restore

    def restore(self, step, abstract_state):
      out = original_restore(self, step, abstract_state)
      _die(what=f'while resuming from step {step}')
      return out
    ckpt_lib.Checkpointer.restore = restore
  else:
    raise SystemExit(f'fault_helpers: unknown fault {spec!r}')


def register_tinynet() -> None:
  """Adds ``tinynet`` to the model registry of this process (test-only)."""
  from _training_helpers import TINYNET  # pylint: disable=g-import-not-at-top
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  models.register('tinynet', TINYNET)


def main() -> None:
  sys.path.insert(0, REPO)
  sys.path.insert(0, TESTS)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import train  # pylint: disable=g-import-not-at-top
  from absl import app  # pylint: disable=g-import-not-at-top
  register_tinynet()
  if os.environ.get(FAULT_ENV):
    install_fault(os.environ[FAULT_ENV])
  train._define_flags()  # pylint: disable=protected-access
  app.run(train._run, flags_parser=train.errors.parse_absl_flags)  # pylint: disable=protected-access


# ----------------------------------------------------------------------------- for the tests


def env(**extra: str) -> dict[str, str]:
  """The subprocess environment: one CPU device, quiet TensorFlow, no fault unless given."""
  out = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)
  out.pop('XLA_FLAGS', None)
  out.pop(FAULT_ENV, None)
  out.update(extra)
  return out


def run_train(workdir: str, *flags: str, fault: str | None = None, timeout: float = 300,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
  """``python tests/fault_helpers.py --config=tests/fault_config.py --workdir=DIR FLAGS``."""
  extra = dict(extra_env or {})
  if fault:
    extra[FAULT_ENV] = fault
  cmd = [sys.executable, os.path.join(TESTS, 'fault_helpers.py'),
         f'--config={os.path.join(TESTS, "fault_config.py")}', f'--workdir={workdir}', *flags]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                        env=env(**extra))


def committed_steps(workdir: str) -> list[int]:
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory) if n.isdigit())


def resumed_from(stdout: str) -> int | None:
  m = re.search(r'resuming from the checkpoint at step (\d+)', stdout)
  return int(m.group(1)) if m else None


def read_metadata(workdir: str, step: int) -> dict[str, Any]:
  with open(os.path.join(workdir, 'checkpoints', str(step), 'metadata', 'metadata')) as f:
    return json.load(f)


def last_line(text: str) -> str:
  lines = [l for l in text.splitlines() if l.strip()]
  return lines[-1] if lines else ''


def describe(proc: subprocess.CompletedProcess | Any, tail: int = 3000) -> str:
  return (f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-tail:]}\n--- stderr\n'
          f'{proc.stderr[-tail:]}')


def killed(proc: subprocess.CompletedProcess) -> bool:
  return proc.returncode == -signal.SIGKILL


__all__: Sequence[str] = ['run_train', 'committed_steps', 'resumed_from', 'read_metadata']

if __name__ == '__main__':
  main()
