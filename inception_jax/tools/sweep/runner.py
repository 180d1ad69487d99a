"""Runs a sweep: each run a train.py subprocess, in order, finished ones skipped; then the report.

A subprocess per run keeps runs isolated and makes each exactly the command a user would type;
signals reach the running train.py so it saves a checkpoint before the sweep stops.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Sequence

import ml_collections

from inception_jax.errors import UserError
from inception_jax.tools import report as report_lib
from inception_jax.tools.report import LOG_FILE, MANIFEST
from inception_jax.tools.sweep.grid import Run, expand, find_file, search_path
from inception_jax.tools.sweep.resume import ExpectedConfigs, config_drift


class _Stop:
  """SIGTERM handler: forward to the running train.py (it saves and exits 143), stop after it."""

  def __init__(self):
    self.signal: int | None = None
    self.proc: subprocess.Popen | None = None
    self._previous = None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.signal = signum
    if self.proc is not None and self.proc.poll() is None:
      self.proc.send_signal(signum)

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread
      self._previous = None
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _run_one(command: list[str], log_path: str, stop: _Stop, out) -> int:
  """Runs ``command``, teeing its output to ``out`` and ``log_path``; returns the exit status."""
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  with open(log_path, 'a') as log:
    log.write(f'# {time.strftime("%Y-%m-%d %H:%M:%S")} {shlex.join(command)}\n')
    log.flush()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, text=True, errors='replace')
    stop.proc = proc
    try:
      for line in proc.stdout:
        out.write(line)
        out.flush()
        log.write(line)
      return proc.wait()
    except KeyboardInterrupt:
      stop.signal = signal.SIGINT
      if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # usually already sent by the terminal
      try:
        return proc.wait(timeout=600)
      except KeyboardInterrupt:
        proc.kill()
        return proc.wait()
    finally:
      stop.proc = None
      proc.stdout.close()


def _display(path: str) -> str:
  """A path relative to the working directory when it lies below it."""
  rel = os.path.relpath(path)
  return path if rel.startswith('..') else rel


def _write_manifest(workdir: str, config: ml_collections.ConfigDict, config_file: str | None,
                    runs: Sequence[Run], python: str, train_script: str,
                    only: Sequence[str] = ()) -> None:
  os.makedirs(workdir, exist_ok=True)
  manifest = {
      'sweep_config': config_file,
      'description': config.get('description', ''),
      'config': json.loads(config.to_json_best_effort()),
      'only': list(only),  # the report does not call the runs --only left out missing
      'runs': [dict(name=r.name, cell=r.cell, seed=r.seed, base=r.base,
                    overrides=r.overrides, command=r.command(python, train_script))
               for r in runs],
  }
  tmp = os.path.join(workdir, MANIFEST + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(manifest, f, indent=2, default=repr)
    f.write('\n')
  os.replace(tmp, os.path.join(workdir, MANIFEST))


def _run_all(runs: Sequence[Run], expected: ExpectedConfigs, python: str, train_script: str,
             stop: _Stop, failures: list[tuple[str, int]], counts: dict[str, int], out) -> None:
  """Runs (or skips) each run in turn; failures and counts are filled in."""
  for i, run in enumerate(runs, 1):
    tag = f'[{i}/{len(runs)}] {run.name}'
    state = report_lib.run_state(run.workdir)
    if state.status == 'finished':
      drift = config_drift(run.workdir, expected(run))
      if not drift:
        out.write(f'{tag}: skipped (finished at step {state.step})\n')
        counts['skipped'] += 1
        continue
      out.write(f'{tag}: finished, but its config changed since ({"; ".join(drift[:4])}'
                f'{"; ..." if len(drift) > 4 else ""}); launching train.py, which resumes from '
                'its last checkpoint (delete the directory to retrain from scratch)\n')
    elif state.status == 'partial':
      where = (f'from its checkpoint at step {state.step}' if state.step is not None
               else 'from the start: no checkpoint yet')
      out.write(f'{tag}: unfinished, resuming {where}\n')
    else:
      out.write(f'{tag}: starting\n')
    out.flush()
    rc = _run_one(run.command(python, train_script), os.path.join(run.workdir, LOG_FILE),
                  stop, out)
    if stop.signal is not None:
      out.write(f'{tag}: stopped by signal {stop.signal} (train.py exit {rc}); rerun the same '
                'command to continue\n')
      break
    if rc != 0:
      failures.append((run.name, rc))
      out.write(f'{tag}: FAILED with exit status {rc} (log: '
                f'{_display(os.path.join(run.workdir, LOG_FILE))}); continuing\n')
    else:
      counts['trained'] += 1
    out.flush()


def run_sweep(config: ml_collections.ConfigDict, workdir: str, *,
              config_file: str | None = None, print_commands: bool = False,
              only: Sequence[str] = (), python: str | None = None, out=None) -> int:
  """Expands, runs (or prints) and reports a sweep; returns the exit status (module docstring)."""
  out = out or sys.stdout
  search = search_path(config_file)
  runs = expand(config, workdir, search=search)
  if only:
    runs = [r for r in runs if any(fnmatch.fnmatchcase(r.name, p) for p in only)]
    if not runs:
      raise UserError(f'--only {",".join(only)} matches no run of the sweep')
  train_script = find_file(config.get('train_script') or 'train.py', search, 'train_script')
  expected = ExpectedConfigs()
  expected.validate(runs)

  if print_commands:
    for run in runs:
      out.write(shlex.join(run.command('python', train_script, _display)) + '\n')
    out.flush()
    print(f'{len(runs)} runs; nothing was run', file=sys.stderr)
    return 0

  python = python or sys.executable
  workdir = os.path.abspath(workdir)
  _write_manifest(workdir, config, config_file, expand(config, workdir, search=search), python,
                  train_script, only)
  failures: list[tuple[str, int]] = []
  counts = dict(skipped=0, trained=0)
  with _Stop() as stop:
    try:
      _run_all(runs, expected, python, train_script, stop, failures, counts, out)
    except KeyboardInterrupt:
      stop.signal = signal.SIGINT
      out.write('interrupted; rerun the same command to continue\n')

  try:
    paths = report_lib.write_report(workdir, log=lambda line: out.write(line + '\n'))
    out.write(f'report: {", ".join(_display(p) for p in paths)}\n')
  except Exception as e:  # noqa: BLE001 - the runs are done; say why the report is missing
    out.write(f'the report failed ({type(e).__name__}: {e}); rerun python -m '
              f'inception_jax.tools.report {_display(workdir)}\n')
    failures.append(('report', 1))
  out.write(f'sweep: {len(runs)} runs, {counts["trained"]} trained, {counts["skipped"]} skipped '
            f'(already finished), {len(failures)} failed\n')
  out.flush()
  if stop.signal is not None:
    return 130 if stop.signal == signal.SIGINT else 143
  if failures:
    for name, rc in failures:
      out.write(f'  failed: {name} (exit {rc})\n')
    out.flush()
    return 1
  return 0
