r"""Ablation sweeps: a grid of ordinary ``train.py`` runs, one sub-workdir each, then a report.

  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py --workdir=sweeps/aux
  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py:imagenet \
      --workdir=/ckpt/aux --config.overrides.data_dir=/data/tfds --print_commands
  python -m inception_jax.tools.sweep --config=configs/ablations/inception_v3_factorizations.py \
      --workdir=sweeps/v3 --config.seeds='(0,)' --only='variant=stem_7x7/*'

A sweep config (``configs/ablations/*.py``, ``get_config(arg)``; start from :func:`sweep_config`)
holds:

* ``base``: the training config file every run starts from, ``path[:arg]`` exactly as train.py's
  ``--config`` takes it (relative paths are looked up from the working directory, then from the
  directories above the sweep config, i.e. the repository root).
* ``overrides``: training-config fields set for every run. It has a typed, unset placeholder for
  every field of the schema (``inception_jax.config.schema``), so any field can be set from the
  command line: ``--config.overrides.num_train_steps=100``,
  ``--config.overrides.model_overrides.width_multiplier=0.5``.
* ``axes``: axis name (a training-config field, dotted for nested ones, e.g.
  ``model_overrides.stem``) -> tuple of values. The grid is their product.
* ``variants`` (optional): name -> nested overrides, one more axis named ``variant_axis``
  (``variant`` by default) whose cells set several fields at once (e.g. one switch off at a time
  instead of the full product); the reserved key ``base`` replaces the training config file.
* ``seeds``: every cell runs once per seed (``config.seed``, which seeds init, data order,
  augmentation and dropout).

Each run is ``python train.py --config=BASE --workdir=DIR/NAME --config.K=V ...`` in its own
sub-workdir ``NAME`` = ``axis=value[,axis=value...]/seed=S`` (e.g. ``aux_weight=0.3/seed=1``; the
last component of a dotted axis names it when that is unambiguous). Runs go one after another,
seed-major (every cell of seed 0 first, so a partial sweep already compares all cells), each as a
subprocess: isolated, and exactly what a user would type. Its output goes to the terminal and to
``NAME/train.log``.

Completion marker (nothing is added to the training system): a run is *finished* when its latest
committed checkpoint ``checkpoints/<S>`` has metadata with ``num_train_steps == S`` and
``metrics.jsonl`` holds an ``eval`` line at step ``S``. train.py writes that line only after the
final checkpoint was saved, just before it returns, so a run killed at any point is not finished;
rerunning it resumes from its last checkpoint (a run killed during its final evaluation only
re-evaluates). A finished run whose ``config.json`` no longer matches what the sweep would launch
(fields other than logging/checkpoint cadence, ``data_dir``, devices) is launched again with a
warning: train.py resumes it from its last checkpoint (it trains further if ``num_train_steps``
grew, refuses with a one-line error if the network changed; delete the run directory to retrain
from scratch).

A failed run is reported and the sweep goes on with the next; at the end it writes the report
(:mod:`inception_jax.tools.report`: results.csv, results.md, PNG plots) and exits 1 listing the failures.
SIGTERM / Ctrl-C are passed to the running train.py (which saves a checkpoint), then the sweep
writes the report and stops (exit 143 / 130); rerun the same command to continue.
``--print_commands`` prints one launch command per run instead (for a cluster) and runs nothing;
``--only=GLOB[,GLOB]`` restricts the sweep to the runs whose names match (the report leaves the
others out unless they ran before). ``DIR/sweep.json`` records the grid (every run's coordinates,
seed and command) and ``--only`` for the report. Every run's config is built and validated
(``schema.validate_config``) before the first one starts. Exit status 2: a one-line error in the
sweep config or flags.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import Any, Iterable, Sequence

import ml_collections
from ml_collections.config_dict import placeholder

from inception_jax import errors
from inception_jax.config import loading as config_loading
from inception_jax.tools import report as report_lib
# Config-file loading lives in config_loading (config files use it without this CLI); the sweep
# uses the same functions, and they stay reachable as ``sweep.load_config_file`` and so on.
from inception_jax.config.loading import (  # pylint: disable=unused-import
    apply_overrides, load_config_file, load_config_module, parse_arg, split_config_spec)
from inception_jax.errors import UserError

MANIFEST = report_lib.MANIFEST
LOG_FILE = report_lib.LOG_FILE
# Fields that may change between launches of a finished run without making it stale.
CADENCE_FIELDS = ('log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                  'keep_checkpoints', 'tensorboard', 'data_dir', 'num_devices', 'parallel',
                  'eval_batch_size')


# ----------------------------------------------------------------------------- config helpers


def _placeholders_like(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A ConfigDict with the structure of ``config`` and an unset typed placeholder per leaf."""
  out = ml_collections.ConfigDict()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out[key] = _placeholders_like(value)
    else:
      kind = config.get_type(key)
      out[key] = placeholder(kind if kind is not type(None) else object)
  return out


def override_placeholders() -> ml_collections.ConfigDict:
  """Unset placeholders for every training-config field (``sweep_config().overrides``)."""
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
  return _placeholders_like(schema.base_config())


def sweep_config(base: str, *, seeds: Sequence[int] = (0, 1, 2),
                 description: str = '') -> ml_collections.ConfigDict:
  """The skeleton every ``configs/ablations/*.py`` fills in (see the module docstring)."""
  c = ml_collections.ConfigDict()
  c.description = description
  c.base = base
  c.train_script = 'train.py'
  c.overrides = override_placeholders()
  # Insertion order is the order of the runs and of the report's rows.
  c.axes = ml_collections.ConfigDict(allow_dotted_keys=True, sort_keys=False)
  c.variants = ml_collections.ConfigDict(sort_keys=False)
  c.variant_axis = 'variant'
  c.seeds = tuple(int(s) for s in seeds)
  return c


def flatten(tree: Any, prefix: str = '', *, skip_none: bool = False) -> dict[str, Any]:
  """Nested ConfigDict / dict -> ``{'a.b': leaf}`` in insertion order."""
  out: dict[str, Any] = {}
  items = tree.items() if hasattr(tree, 'items') else ()
  for key, value in items:
    path = f'{prefix}{key}'
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(flatten(value, path + '.', skip_none=skip_none))
    elif not (skip_none and value is None):
      out[path] = value
  return out


def flag_value(value: Any) -> str:
  """A value as config_flags parses it back (``--config.KEY=<this>``)."""
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def label_value(value: Any) -> str:
  """A value as a directory-name component (``0.3``, ``7x7``, ``False``)."""
  if isinstance(value, (list, tuple)):
    text = '-'.join(label_value(v) for v in value)
  else:
    text = repr(value) if isinstance(value, float) else str(value)
  return ''.join('_' if ch in '/\\: \t\n*?' else ch for ch in text) or '_'


# ----------------------------------------------------------------------------- the grid


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the sweep."""

  name: str                   # sub-workdir, e.g. 'aux_weight=0.3/seed=1'
  cell: dict[str, Any]        # the cell's coordinates: short axis name -> value
  seed: int
  base: str                   # training config, path[:arg] (path absolute)
  overrides: dict[str, Any]   # dotted training-config field -> value, seed last
  workdir: str                # absolute

  def command(self, python: str, train_script: str, display=lambda p: p) -> list[str]:
    """The train.py command line (``display`` maps paths for printing)."""
    path, arg = split_config_spec(self.base)
    config = display(path) + (f':{arg}' if arg is not None else '')
    return ([python, display(train_script), f'--config={config}',
             f'--workdir={display(self.workdir)}'] +
            [f'--config.{k}={flag_value(v)}' for k, v in self.overrides.items()])


def _find(path: str, search: Sequence[str], what: str) -> str:
  if os.path.isabs(path):
    if os.path.exists(path):
      return path
    raise UserError(f'{what} {path!r} does not exist')
  for directory in search:
    candidate = os.path.join(directory, path)
    if os.path.exists(candidate):
      return os.path.abspath(candidate)
  raise UserError(f'{what} {path!r} not found in the working directory nor above the sweep config '
                  f'({", ".join(search[:3])}...)')


def search_path(sweep_config_file: str | None) -> list[str]:
  """Where relative ``base`` / ``train_script`` paths are looked up: the working directory,
  then every directory above the sweep config file (the repository root among them), then the
  directory above the installed package."""
  dirs = [os.getcwd()]
  if sweep_config_file:
    d = os.path.dirname(os.path.abspath(split_config_spec(sweep_config_file)[0]))
    while True:
      dirs.append(d)
      parent = os.path.dirname(d)
      if parent == d:
        break
      d = parent
  dirs.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return list(dict.fromkeys(dirs))


def _short_names(paths: Sequence[str]) -> dict[str, str]:
  """Axis paths -> their last component, unless two axes would share it."""
  last = [p.rsplit('.', 1)[-1] for p in paths]
  return {p: (l if last.count(l) == 1 else p) for p, l in zip(paths, last)}


def expand(config: ml_collections.ConfigDict, workdir: str, *,
           search: Sequence[str] = ()) -> list[Run]:
  """The runs of a sweep config, seed-major (all cells of the first seed first)."""
  search = list(search) or [os.getcwd()]
  workdir = os.path.abspath(workdir)
  seeds = tuple(config.get('seeds') or ())
  if not seeds:
    raise UserError('the sweep has no seeds; set config.seeds, e.g. --config.seeds="(0,)"')
  if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
    raise UserError(f'config.seeds must be integers, e.g. --config.seeds="(0, 1)", got {seeds!r}')
  if len(set(seeds)) != len(seeds):
    raise UserError(f'config.seeds has duplicates: {seeds}')

  def resolve(spec: str) -> str:
    path, arg = split_config_spec(spec)
    path = _find(path, search, 'training config')
    return path + (f':{arg}' if arg is not None else '')

  base = resolve(config.base)
  common = flatten(config.get('overrides') or {}, skip_none=True)
  axes = list((config.get('axes') or {}).items())
  for name, values in axes:
    if not isinstance(values, (tuple, list)) or not values:
      raise UserError(f'axis {name!r} needs a non-empty tuple of values, got {values!r}')
    if name == 'seed':
      raise UserError('"seed" is not an axis; set config.seeds')
  short = _short_names([name for name, _ in axes])
  variant_axis = config.get('variant_axis') or 'variant'
  variants = list((config.get('variants') or {}).items()) or [(None, {})]

  cells = []
  for (vname, vover), combo in itertools.product(
      variants, itertools.product(*[values for _, values in axes])):
    vflat = flatten(vover)
    cell_base = resolve(vflat.pop('base')) if 'base' in vflat else base
    cell: dict[str, Any] = {}
    parts = []
    if vname is not None:
      cell[variant_axis] = vname
      parts.append(f'{variant_axis}={label_value(vname)}')
    overrides = dict(common)
    overrides.update(vflat)
    for (axis, _), value in zip(axes, combo):
      cell[short[axis]] = value
      parts.append(f'{short[axis]}={label_value(value)}')
      overrides[axis] = value
    cells.append((','.join(parts), cell, cell_base, overrides))
  names = [c[0] for c in cells]
  if len(set(names)) != len(names):
    raise UserError('two cells of the sweep get the same directory name; give variants and axis '
                    'values distinct names')

  runs = []
  for seed in seeds:
    for label, cell, cell_base, overrides in cells:
      name = '/'.join(p for p in (label, f'seed={int(seed)}') if p)
      ov = {k: v for k, v in overrides.items() if k != 'seed'}
      ov['seed'] = int(seed)
      runs.append(Run(name=name, cell=dict(cell), seed=int(seed), base=cell_base, overrides=ov,
                      workdir=os.path.join(workdir, *name.split('/'))))
  return runs


class ExpectedConfigs:
  """The training config each run will get, built here as config_flags builds it in train.py
  (base file, then the overrides); checks every run before anything is launched."""

  def __init__(self):
    self._bases: dict[str, ml_collections.ConfigDict] = {}

  def __call__(self, run: Run) -> ml_collections.ConfigDict:
    if run.base not in self._bases:
      self._bases[run.base] = load_config_file(run.base)
    return apply_overrides(self._bases[run.base], run.overrides,
                           f'the training config {os.path.basename(run.base)} (run {run.name})')

  def validate(self, runs: Iterable[Run]) -> None:
    from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
    for run in runs:
      try:
        schema.validate_config(self(run))
      except UserError as e:
        raise UserError(f'run {run.name}: {e}') from None


def config_drift_dicts(saved: dict[str, Any], wanted: dict[str, Any],
                       ignore: Sequence[str] = CADENCE_FIELDS) -> list[str]:
  """``'field: saved -> wanted'`` for every leaf that differs (top-level fields in ``ignore``
  skipped)."""
  saved, wanted = flatten(saved), flatten(wanted)
  diffs = []
  for key in sorted(set(saved) | set(wanted)):
    if key.split('.')[0] in ignore:
      continue
    if saved.get(key) != wanted.get(key):
      diffs.append(f'{key}: {saved.get(key)!r} -> {wanted.get(key)!r}')
  return diffs


def config_drift(workdir: str, expected: ml_collections.ConfigDict) -> list[str]:
  """Fields whose value in ``workdir/config.json`` differs from ``expected`` (cadence ignored)."""
  try:
    with open(os.path.join(workdir, 'config.json')) as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return ['config.json missing or unreadable']
  return config_drift_dicts(saved, json.loads(expected.to_json_best_effort()))


# ----------------------------------------------------------------------------- running


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
  train_script = _find(config.get('train_script') or 'train.py', search, 'train_script')
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


# ----------------------------------------------------------------------------- command line


def _one_line(e: BaseException) -> str:
  """A flag-parsing error in one line; a traceback from a config file becomes its last line."""
  text = str(e).strip()
  if 'Traceback (most recent call last)' in text:
    head = text.split('Traceback', 1)[0].split(': Error whilst', 1)[0].strip(' :')
    last = text.splitlines()[-1].strip()
    kind, sep, message = last.partition(': ')
    if sep and ' ' not in kind:
      last = message
    text = f'{head}: {last}' if head else last
  return ' '.join(text.split()) or type(e).__name__


def main(argv: Sequence[str]) -> int:
  """``python -m inception_jax.tools.sweep`` (flags on a private FlagValues, so tests can call it)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file(
      'config', None, 'Sweep config file (configs/ablations/*.py[:arg]).', flag_values=fv,
      lock_config=True, sys_argv=list(argv))
  workdir = flags.DEFINE_string('workdir', None, 'Sweep directory: one sub-workdir per run, '
                                'sweep.json and the report.', flag_values=fv)
  print_commands = flags.DEFINE_bool('print_commands', False, 'Print one train.py command per '
                                     'run (for a cluster) and run nothing.', flag_values=fv)
  only = flags.DEFINE_list('only', [], 'Run only the runs whose name matches one of these '
                           'glob patterns (e.g. "aux_weight=0.3/*").', flag_values=fv)
  if any(a in ('-h', '--help', '--helpfull', '-help') for a in argv[1:]):
    print(__doc__.strip() + '\n\nflags:\n' + fv.get_help())
    return 0
  try:
    fv(list(argv))
  except (AttributeError, KeyError) as e:
    raise UserError(errors.unknown_config_field(
        e, argv[1:], 'the fields are description, base, train_script, overrides.<training '
        'field>, axes.<axis>, variants.<name>..., variant_axis, seeds',
        what='sweep-config field')) from None
  except (flags.Error, TypeError, ValueError, OSError) as e:
    raise UserError(errors.flag_value_error(e, fv, argv) or _one_line(e)) from None
  if fv['config'].value is None or not fv['config'].present:
    raise UserError('--config=configs/ablations/NAME.py is required')
  if not workdir.value:
    raise UserError('--workdir=DIR is required')
  config = config_loading.config_from_flag(config_flag, probe='base',
                                          catch=(OSError, AttributeError))
  config_file = config_flags.get_config_filename(fv['config'])
  return run_sweep(config, workdir.value, config_file=config_file,
                   print_commands=print_commands.value, only=only.value)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  errors.run_cli(lambda: sys.exit(main(sys.argv)))
