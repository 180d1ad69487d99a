"""Sweep runner and report: a real two-run sweep end to end, skip/resume/failure handling with a
stand-in train script, launch commands that train.py parses back to the intended config, and the
report's statistics on hand-written runs."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import sys
import textwrap
import threading
import time

import pytest

from inception_jax.tools import report, sweep
from inception_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)
  return str(path)


def _sweep_config_file(tmp_path, body: str, name: str = 'tiny_sweep.py') -> str:
  return _write(tmp_path / name, textwrap.dedent(f'''
      from inception_jax.tools import sweep

      def get_config(arg=None):
        c = sweep.sweep_config({os.path.join(REPO, 'configs', 'default.py')!r}, seeds=(0,))
      ''') + textwrap.indent(textwrap.dedent(body), '  ') + '  return c\n')


def _read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def _is_png(path):
  with open(path, 'rb') as f:
    return f.read(8) == PNG_MAGIC and os.path.getsize(path) > 5000


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_sweep_end_to_end_then_rerun_skips(tmp_path, monkeypatch, capsys):
  """Two cells x one seed of real train.py runs (GoogLeNet, naive modules, no aux heads, width 1/8,
  32 px digits, 3 steps, one final eval); the rerun launches nothing and leaves every file
  untouched."""
  # The two cells differ in a field outside the compiled program (the shuffle buffer), so the
  # second run loads the first one's executables from a persistent compilation cache; and XLA's
  # CPU backend optimisations are off: compile time, not run time, dominates 3 steps.
  monkeypatch.setenv('JAX_COMPILATION_CACHE_DIR', str(tmp_path / 'jax_cache'))
  monkeypatch.setenv('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  monkeypatch.setenv('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
  monkeypatch.setenv('XLA_FLAGS', '--xla_backend_optimization_level=0 '
                     '--xla_llvm_disable_expensive_passes=true')
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  config_file = _sweep_config_file(tmp_path, f'''
      c.train_script = {os.path.join(REPO, 'train.py')!r}
      c.overrides.num_train_steps = 3
      c.overrides.log_every_steps = 1
      c.overrides.tensorboard = False
      c.overrides.model_overrides.width_multiplier = 0.125
      c.overrides.model_overrides.aux_logits = False     # the smallest program to compile
      c.overrides.model_overrides.module_kind = 'naive'
      c.axes['shuffle_buffer'] = (512, 1024)
      ''')
  workdir = tmp_path / 'sweep'
  rc = sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}'])
  out = capsys.readouterr().out
  assert rc == 0, out
  names = ['shuffle_buffer=512/seed=0', 'shuffle_buffer=1024/seed=0']
  for name in names:
    run_dir = os.path.join(workdir, *name.split('/'))
    state = report.run_state(run_dir)
    assert (state.status, state.step, state.total_steps) == ('finished', 3, 3), name
    assert os.path.exists(os.path.join(run_dir, sweep.LOG_FILE))
    with open(os.path.join(run_dir, 'config.json')) as f:
      saved = json.load(f)
    assert saved['shuffle_buffer'] == int(name.split('=')[1].split('/')[0])
    assert saved['num_train_steps'] == 3 and saved['seed'] == 0
  assert 'sweep: 2 runs, 2 trained, 0 skipped' in out

  rows = _read_csv(workdir / 'results.csv')
  assert [r['run'] for r in rows] == names
  for row in rows:
    evals = [json.loads(l) for l in open(os.path.join(workdir, *row['run'].split('/'),
                                                      'metrics.jsonl')) if '"eval"' in l]
    assert row['status'] == 'finished' and row['steps'] == '3'
    assert float(row['final_top1']) == pytest.approx(100 * evals[-1]['top1'], abs=1e-3)
    assert int(row['params']) > 0 and int(row['macs']) > 0 and float(row['images_per_sec']) > 0
  md = (workdir / 'results.md').read_text()
  assert '| shuffle_buffer | n | final top-1 |' in md and '2 finished' in md
  assert _is_png(workdir / 'learning_curves.png')
  # Both cells train the same network: one MACs value, nothing to plot against.
  assert not os.path.exists(workdir / 'accuracy_vs_macs.png')
  assert 'accuracy_vs_macs.png skipped: every variant has the same MACs' in out
  assert json.loads((workdir / 'sweep.json').read_text())['runs'][1]['name'] == names[1]

  def snapshot():
    files = {}
    for root, _, fs in os.walk(workdir):
      for f in fs:
        if f.startswith('results') or f.endswith('.png') or f == sweep.MANIFEST:
          continue  # the report and manifest are rewritten on purpose
        p = os.path.join(root, f)
        files[p] = (os.stat(p).st_mtime_ns, os.path.getsize(p))
    return files

  before = snapshot()
  rc = sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}'])
  out = capsys.readouterr().out
  assert rc == 0, out
  assert out.count(': skipped (finished at step 3)') == 2
  assert 'sweep: 2 runs, 0 trained, 2 skipped' in out
  assert 'googlenet on digits' not in out  # train.py never started
  assert snapshot() == before


# ----------------------------------------------------------------------------- stand-in trainer

_FAKE_TRAIN = r'''
"""Stands in for train.py: fails for aux_weight=1.0, otherwise writes a finished run."""
import json, os, sys
args = dict(a[2:].split('=', 1) for a in sys.argv[1:] if a.startswith('--'))
workdir = args['workdir']
os.makedirs(workdir, exist_ok=True)
with open(os.path.join(os.path.dirname(os.path.dirname(workdir)), 'launches.txt'), 'a') as f:
  f.write(os.path.relpath(workdir, os.path.dirname(os.path.dirname(workdir))) + '\n')
print('fake train', workdir, flush=True)
if args.get('config.aux_weight') == '1.0':
  print('error: something broke', file=sys.stderr)
  sys.exit(3)
sys.path.insert(0, REPO)
from inception_jax.tools import sweep
config = sweep.load_config_file(args['config'])
config = sweep.apply_overrides(
    config, {k[len('config.'):]: json.loads(v) if v[:1].isdigit() else v
             for k, v in args.items() if k.startswith('config.')}, 'fake')
with open(os.path.join(workdir, 'config.json'), 'w') as f:
  f.write(config.to_json_best_effort())
steps = 2
meta = os.path.join(workdir, 'checkpoints', str(steps), 'metadata')
os.makedirs(meta, exist_ok=True)
with open(os.path.join(meta, 'metadata'), 'w') as f:
  json.dump({'num_train_steps': steps, 'num_classes': 10, 'step': steps}, f)
with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
  for kind in ('train', 'eval'):
    f.write(json.dumps({'step': steps, 'kind': kind, 'loss': 1.0, 'top1': 0.5, 'top5': 0.9}) + '\n')
'''


def _fake_sweep(tmp_path, seeds=(0,)):
  fake = _write(tmp_path / 'fake_train.py', f'REPO = {REPO!r}\n' + _FAKE_TRAIN)
  return _sweep_config_file(tmp_path, f'''
      c.train_script = {fake!r}
      c.seeds = {tuple(seeds)!r}
      c.axes['aux_weight'] = (0.0, 0.3, 1.0)
      ''')


def _launches(workdir):
  path = os.path.join(workdir, 'launches.txt')
  return open(path).read().split() if os.path.exists(path) else []


@pytest.mark.slow  # spawns stand-in train.py processes
def test_failed_run_is_reported_and_the_sweep_goes_on(tmp_path, capsys):
  config_file = _fake_sweep(tmp_path)
  workdir = tmp_path / 'sweep'
  rc = sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}'])
  out = capsys.readouterr().out
  assert rc == 1
  assert 'aux_weight=1.0/seed=0: FAILED with exit status 3' in out
  assert out.rstrip().endswith('failed: aux_weight=1.0/seed=0 (exit 3)')
  assert 'sweep: 3 runs, 2 trained, 0 skipped (already finished), 1 failed' in out
  log = (workdir / 'aux_weight=1.0' / 'seed=0' / sweep.LOG_FILE).read_text()
  assert 'error: something broke' in log and log.startswith('# ')
  rows = {r['run']: r for r in _read_csv(workdir / 'results.csv')}
  assert rows['aux_weight=0.3/seed=0']['status'] == 'finished'
  assert rows['aux_weight=1.0/seed=0']['status'] == 'partial'  # started (its log), failed
  # Rerun: the finished runs are skipped (their config matches), only the failed one relaunches.
  rc = sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}'])
  out = capsys.readouterr().out
  assert rc == 1 and out.count('skipped (finished at step 2)') == 2
  assert _launches(workdir).count('aux_weight=1.0/seed=0') == 2
  assert _launches(workdir).count('aux_weight=0.0/seed=0') == 1


@pytest.mark.slow  # spawns stand-in train.py processes
def test_unfinished_runs_resume_and_stale_runs_relaunch(tmp_path, capsys):
  config_file = _fake_sweep(tmp_path)
  workdir = tmp_path / 'sweep'
  # aux_weight=0.0: a checkpoint at step 1 of 2 (interrupted) -> resumed.
  partial = workdir / 'aux_weight=0.0' / 'seed=0'
  _write(partial / 'checkpoints' / '1' / 'metadata' / 'metadata',
         json.dumps({'num_train_steps': 2, 'step': 1}))
  _write(partial / 'metrics.jsonl', json.dumps({'step': 1, 'kind': 'train', 'loss': 2.0}) + '\n')
  # aux_weight=0.3: finished, but with another learning rate than the sweep asks for -> relaunched.
  stale = workdir / 'aux_weight=0.3' / 'seed=0'
  _write(stale / 'checkpoints' / '2' / 'metadata' / 'metadata',
         json.dumps({'num_train_steps': 2, 'step': 2}))
  _write(stale / 'metrics.jsonl', json.dumps({'step': 2, 'kind': 'eval', 'top1': 0.1}) + '\n')
  expected = sweep.ExpectedConfigs()(
      sweep.expand(sweep.load_config_file(config_file), workdir)[1])
  asked_rate = expected.learning_rate
  with expected.unlocked():
    expected.learning_rate = 0.5
    expected.log_every_steps = 7  # cadence: ignored
  _write(stale / 'config.json', expected.to_json_best_effort())
  assert report.run_state(str(partial)).status == 'partial'
  assert report.run_state(str(stale)).status == 'finished'
  sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}'])
  out = capsys.readouterr().out
  assert 'aux_weight=0.0/seed=0: unfinished, resuming from its checkpoint at step 1' in out
  assert ('aux_weight=0.3/seed=0: finished, but its config changed since (learning_rate: 0.5 -> '
          f'{asked_rate})') in out
  assert 'log_every_steps' not in out
  assert sorted(_launches(workdir)) == sorted(
      ['aux_weight=0.0/seed=0', 'aux_weight=0.3/seed=0', 'aux_weight=1.0/seed=0'])


@pytest.mark.slow  # spawns stand-in train.py processes
def test_only_filters_runs(tmp_path, capsys):
  config_file = _fake_sweep(tmp_path, seeds=(0, 1))
  workdir = tmp_path / 'sweep'
  assert sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}',
                     '--only=aux_weight=0.3/*']) == 0
  assert sorted(_launches(workdir)) == ['aux_weight=0.3/seed=0', 'aux_weight=0.3/seed=1']
  # The runs --only left out are not called missing: counted, not listed.
  rows = _read_csv(workdir / 'results.csv')
  assert [(r['run'], r['status']) for r in rows] == [
      ('aux_weight=0.3/seed=0', 'finished'), ('aux_weight=0.3/seed=1', 'finished')]
  md = (workdir / 'results.md').read_text()
  assert ('2 runs: 2 finished, 0 partial, 0 missing; 4 more runs of the grid not selected by '
          '--only=aux_weight=0.3/*') in md
  assert 'missing (' not in md and '| 0.0 |' not in md
  # A later sweep with another --only: the runs that ran before stay in the report.
  capsys.readouterr()
  assert sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}',
                     '--only=aux_weight=0.0/seed=0']) == 0
  rows = _read_csv(workdir / 'results.csv')
  assert sorted(r['run'] for r in rows) == ['aux_weight=0.0/seed=0', 'aux_weight=0.3/seed=0',
                                            'aux_weight=0.3/seed=1']
  assert '3 more runs of the grid not selected by --only=aux_weight=0.0/seed=0' in (
      workdir / 'results.md').read_text()
  with pytest.raises(UserError, match='matches no run'):
    sweep.main(['sweep', f'--config={config_file}', f'--workdir={workdir}', '--only=nope*'])


@pytest.mark.slow  # spawns a stand-in train.py process
def test_sigterm_stops_the_sweep_after_the_running_train_py(tmp_path, capsys):
  """SIGTERM reaches the running train.py (which saves and exits 143); no later run starts."""
  started = tmp_path / 'started'
  fake = _write(tmp_path / 'slow_train.py', textwrap.dedent(f'''
      import signal, sys, time
      def on_term(*_):
        print('saved a checkpoint, exiting', flush=True)
        sys.exit(143)
      signal.signal(signal.SIGTERM, on_term)
      open({str(started)!r}, 'w').close()
      time.sleep(60)
      '''))
  config_file = _sweep_config_file(tmp_path, f'''
      c.train_script = {fake!r}
      c.axes['aux_weight'] = (0.0, 0.3)
      ''')

  def preempt():
    for _ in range(600):
      if started.exists():
        os.kill(os.getpid(), signal.SIGTERM)
        return
      time.sleep(0.05)

  previous_handler = signal.getsignal(signal.SIGTERM)
  killer = threading.Thread(target=preempt, daemon=True)
  killer.start()
  rc = sweep.main(['sweep', f'--config={config_file}', f'--workdir={tmp_path / "sweep"}'])
  killer.join()
  out = capsys.readouterr().out
  assert rc == 143, out
  assert 'saved a checkpoint, exiting' in out
  assert 'aux_weight=0.0/seed=0: stopped by signal 15 (train.py exit 143)' in out
  assert 'aux_weight=0.3' not in out.split('stopped by signal')[1].split('report:')[0]
  assert not (tmp_path / 'sweep' / 'aux_weight=0.3').exists()
  assert signal.getsignal(signal.SIGTERM) == previous_handler  # restored


# ----------------------------------------------------------------------------- commands


def _train_py_config(command: list[str]):
  """What train.py's config_flags makes of a printed command (its --config and --config.*)."""
  from absl import flags
  from ml_collections import config_flags
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=fv, lock_config=True,
                                  sys_argv=['train.py'] + command[2:])
  flags.DEFINE_string('workdir', None, '', flag_values=fv)
  cwd = os.getcwd()
  try:
    os.chdir(REPO)  # printed paths are relative to the directory the sweep ran in
    fv(['train.py'] + command[2:])
    return fv['config'].value, fv['workdir'].value
  finally:
    os.chdir(cwd)


@pytest.mark.parametrize('spec,n_runs', [
    ('aux_weight.py', 4 * 2),
    ('inception_v3_factorizations.py', 5 * 2),
    ('inception_v3_factorizations.py:imagenet,product', 16 * 2),
    ('ladder.py', 8 * 2),
])
def test_print_commands_one_per_run_parsed_back_by_train_py(spec, n_runs, tmp_path, capsys,
                                                             monkeypatch):
  monkeypatch.chdir(REPO)
  workdir = tmp_path / 'not_created'
  rc = sweep.main(['sweep', f'--config=configs/ablations/{spec}', f'--workdir={workdir}',
                   '--print_commands', '--config.seeds=(3, 4)'])
  captured = capsys.readouterr()
  assert rc == 0 and f'{n_runs} runs; nothing was run' in captured.err
  lines = captured.out.splitlines()
  assert len(lines) == n_runs and not workdir.exists()
  config = sweep.load_config_file(f'configs/ablations/{spec}')
  with config.unlocked():
    config.seeds = (3, 4)
  runs = sweep.expand(config, str(workdir), search=[REPO])
  expected = sweep.ExpectedConfigs()
  for line, run in zip(lines, runs):
    command = shlex.split(line)
    assert command[:2] == ['python', 'train.py']
    assert f'--workdir={workdir}/{run.name}' in command and f'--config.seed={run.seed}' in command
    if line is lines[0] or line is lines[-1]:  # parsing loads the config file: two suffice
      parsed, parsed_workdir = _train_py_config(command)
      assert parsed_workdir == run.workdir
      assert sweep.config_drift_dicts(
          json.loads(parsed.to_json_best_effort()),
          json.loads(expected(run).to_json_best_effort()), ignore=()) == []
  assert runs[0].seed == 3 and runs[-1].seed == 4  # seed-major order
  if spec == 'aux_weight.py':
    assert [r.name for r in runs[:4]] == [f'aux_weight={w}/seed=3' for w in (0.0, 0.1, 0.3, 1.0)]
    assert '--config.aux_weight=0.1' in lines[1]


def test_expand_names_axes_and_variants():
  config = sweep.sweep_config('configs/default.py', seeds=(0, 1))
  config.axes['model_overrides.stem'] = ('3x3', '7x7')
  config.axes['aux_weight'] = (0.3,)
  config.variants.a = {}
  config.variants.b = {'label_smoothing': 0.1, 'model_overrides': {'dropout_rate': 0.2}}
  runs = sweep.expand(config, '/sweeps/x', search=[REPO])
  assert len(runs) == 2 * 2 * 1 * 2
  assert runs[0].name == 'variant=a,stem=3x3,aux_weight=0.3/seed=0'
  assert runs[3].name == 'variant=b,stem=7x7,aux_weight=0.3/seed=0'
  assert runs[3].cell == {'variant': 'b', 'stem': '7x7', 'aux_weight': 0.3}
  assert runs[3].overrides == {'label_smoothing': 0.1, 'model_overrides.dropout_rate': 0.2,
                               'model_overrides.stem': '7x7', 'aux_weight': 0.3, 'seed': 0}
  assert runs[3].workdir == '/sweeps/x/variant=b,stem=7x7,aux_weight=0.3/seed=0'
  assert runs[4].seed == 1
  config.axes['model_overrides.nope'] = (1,)
  with pytest.raises(UserError, match="'model_overrides.nope' is not a field"):
    sweep.ExpectedConfigs().validate(sweep.expand(config, '/sweeps/x', search=[REPO]))


def test_sweep_config_errors_are_one_line(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(REPO)
  for argv, message in [
      (['--config=configs/ablations/aux_weight.py:bogus'], "unknown config option 'bogus'"),
      (['--config=configs/ablations/aux_weight.py', '--config.nope=1'],
       "unknown sweep-config field 'nope' in --config.nope=1; the fields are"),
      (['--config=configs/ablations/aux_weight.py', '--config.overrides.learnig_rate=0.1'],
       r"unknown sweep-config field 'overrides.learnig_rate' in "
       r"--config.overrides.learnig_rate=0.1. Did you mean 'overrides.learning_rate'\? The "
       'fields are'),
      (['--config=configs/ablations/aux_weight.py', '--config.overrides.num_train_steps=abc'],
       '^expected an integer for overrides.num_train_steps, got "abc"$'),
      (['--config=configs/ablations/aux_weight.py', '--config.seeds=abc'],
       'config.seeds must be integers'),
      (['--config=configs/ablations/aux_weight.py', '--config.seeds=()'], 'has no seeds'),
      (['--config=configs/ablations/aux_weight.py', "--config.axes.aux_weight=(-1.0,)"],
       'aux_weight must be non-negative'),
      (['--config=configs/ablations/missing.py'], 'cannot load --config'),
  ]:
    with pytest.raises(UserError, match=message) as e:
      sweep.main(['sweep', *argv, f'--workdir={tmp_path}', '--print_commands'])
    assert '\n' not in str(e.value) and 'Traceback' not in str(e.value)


# ----------------------------------------------------------------------------- report


def _fake_run(run_dir, *, evals, total=None, finished=True, config=None, train=()):
  """A run directory as train.py leaves it: metrics.jsonl, config.json, checkpoint metadata."""
  os.makedirs(run_dir, exist_ok=True)
  lines = [json.dumps({'step': s, 'kind': 'train', 'loss': loss, 'images_per_sec': ips})
           for s, loss, ips in train]
  lines += [json.dumps({'step': s, 'kind': 'eval', 'top1': t1, 'top5': t5, 'loss': 1.0})
            for s, t1, t5 in evals]
  last = max(s for s, *_ in evals)
  total = total or last
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'w') as f:
    f.write('\n'.join(lines) + '\n{"step": 9')  # a torn last line, as a kill leaves it
  ckpt = total if finished else last
  _write(os.path.join(run_dir, 'checkpoints', str(ckpt), 'metadata', 'metadata'),
         json.dumps({'num_train_steps': total, 'step': ckpt, 'num_classes': 10}))
  os.makedirs(os.path.join(run_dir, 'checkpoints', f'{total + 5}.orbax-checkpoint-tmp-1'))
  if config is not None:
    _write(os.path.join(run_dir, 'config.json'), json.dumps(config))


@pytest.mark.slow  # imports matplotlib and draws the figures
def test_report_statistics_on_synthetic_runs(tmp_path, capsys):
  """No sweep.json: runs found by walking the tree, coordinates parsed from the path."""
  net = {'model': 'googlenet', 'image_size': 32, 'dataset': 'digits',
         'model_overrides': {'width_multiplier': 0.125, 'stem': None}}
  for seed, (final, best) in enumerate([(0.50, 0.55), (0.60, 0.60), (0.70, 0.72)]):
    _fake_run(tmp_path / 'aux_weight=0.0' / f'seed={seed}', config=dict(net, seed=seed),
              evals=[(5, best, 0.9), (10, final, 0.95 - 0.05 * seed)],
              train=[(5, 2.0, 100.0), (10, 1.0, 300.0 + seed)])
  _fake_run(tmp_path / 'aux_weight=1.0' / 'seed=0', evals=[(10, 0.80, 1.0)], config=net)
  _fake_run(tmp_path / 'aux_weight=1.0' / 'seed=1', evals=[(5, 0.99, 1.0)], total=10,
            finished=False, config=net)  # stopped at step 5 of 10: not in the statistics

  assert report.main([str(tmp_path)]) == 0
  printed = capsys.readouterr().out
  rows = {r['run']: r for r in _read_csv(tmp_path / 'results.csv')}
  assert len(rows) == 5
  r = rows['aux_weight=0.0/seed=0']
  assert (r['aux_weight'], r['seed'], r['status'], r['steps']) == ('0.0', '0', 'finished', '10')
  assert (float(r['final_top1']), float(r['best_top1']), r['best_step']) == (50.0, 55.0, '5')
  assert float(r['images_per_sec']) == 200.0  # median of 100 and 300
  from inception_jax import models
  from inception_jax.models import summary
  tiny = models.create('googlenet', num_classes=10, width_multiplier=0.125, aux_logits=False)
  assert int(r['params']) == summary.count_params(tiny, 32)
  assert int(r['macs']) == summary.count_macs(tiny, 32)
  partial = rows['aux_weight=1.0/seed=1']
  assert (partial['status'], partial['steps'], partial['total_steps']) == ('partial', '5', '10')

  md = (tmp_path / 'results.md').read_text()
  assert md in printed
  # final top-1 50/60/70 -> 60.00 ± 10.00 (sample std); final top-5 95/90/85 -> 90.00 ± 5.00;
  # best top-1 55/60/72 -> 62.33 ± 8.74; best top-5 95/90/90 -> 91.67 ± 2.89.
  assert '| 0.0 | 3 | 60.00 ± 10.00 | 90.00 ± 5.00 | 62.33 ± 8.74 | 91.67 ± 2.89 |' in md
  # The variant with one finished run of two: no std, the partial run (99%) left out.
  assert '| 1.0 | 1 of 2 | 80.00 | 100.00 | 80.00 | 100.00 |' in md
  assert '`aux_weight=1.0/seed=1`: partial (at step 5 of 10)' in md
  for png in ('learning_curves.png', 'accuracy_vs_aux_weight.png'):
    assert _is_png(tmp_path / png), png
  # Every run is the same network: a MACs plot would print all labels at one x.
  assert not os.path.exists(tmp_path / 'accuracy_vs_macs.png')
  assert (f'accuracy_vs_macs.png skipped: every variant has the same MACs '
          f'({report._human(summary.count_macs(tiny, 32))}) per image') in printed


def test_accuracy_vs_macs_only_when_the_macs_differ(tmp_path):
  def run(name, macs, top1, status='finished'):
    return report.RunResult(name=name, cell={'net': name}, seed=0, status=status, macs=macs,
                            final_top1=top1)

  same = report.group([run('a', 10**6, 50.0), run('b', 10**6, 60.0)])
  assert report._macs_plot_skipped(same) == 'every variant has the same MACs (1M) per image'
  # A variant without a final evaluation has no point to draw.
  unfinished = report.group([run('a', 10**6, 50.0), run('b', 2 * 10**6, None, 'missing')])
  assert report._macs_plot_skipped(unfinished) == 'every variant has the same MACs (1M) per image'
  assert report._macs_plot_skipped(report.group([run('a', None, 50.0)])) == (
      'no variant has both MACs and a final evaluation')
  differ = report.group([run('a', 10**6, 50.0), run('b', 3 * 10**6, 60.0)])
  assert report._macs_plot_skipped(differ) is None
  assert report.plot_accuracy_vs(differ, 'macs', str(tmp_path / 'm.png'), xlabel='MACs')
  assert _is_png(tmp_path / 'm.png')


def test_report_with_manifest_missing_runs_and_paper_columns(tmp_path):
  """sweep.json lists the grid: runs never started are 'missing'; ladder runs carry ``paper``."""
  manifest = {'description': 'ladder', 'runs': [
      {'name': 'row=a/seed=0', 'cell': {'row': 'a'}, 'seed': 0},
      {'name': 'row=a/seed=1', 'cell': {'row': 'a'}, 'seed': 1},
      {'name': 'row=b/seed=0', 'cell': {'row': 'b'}, 'seed': 0}]}
  _write(tmp_path / 'sweep.json', json.dumps(manifest))
  paper = {'top1_error': 21.2, 'top5_error': 5.6}
  _fake_run(tmp_path / 'row=a' / 'seed=0', evals=[(4, 0.75, 0.9)],
            config={'model': 'no_such_model', 'image_size': 32, 'paper': paper})
  _fake_run(tmp_path / 'row=a' / 'seed=1', evals=[(4, 0.77, 0.92)], config={'paper': paper})
  _fake_run(tmp_path / 'stray' / 'seed=0', evals=[(4, 0.1, 0.2)])  # not in the manifest
  paths = report.write_report(str(tmp_path), str(tmp_path / 'out'), plots=False)
  assert [os.path.basename(p) for p in paths] == ['results.csv', 'results.md']
  rows = _read_csv(tmp_path / 'out' / 'results.csv')
  assert [(r['run'], r['status']) for r in rows] == [
      ('row=a/seed=0', 'finished'), ('row=a/seed=1', 'finished'), ('row=b/seed=0', 'missing')]
  assert rows[0]['params'] == '' and rows[0]['paper_top1_error'] == '21.2'
  md = (tmp_path / 'out' / 'results.md').read_text()
  assert md.startswith('# ladder')
  assert 'top-1 err (run) | top-1 err (paper) | top-5 err (run) | top-5 err (paper) |' in md
  # run top-1 error 100 - (75, 77) -> 24.0 ± 1.4 next to the paper's 21.2
  assert '| 24.0 ± 1.4 | 21.2 | 9.0 ± 1.4 | 5.6 |' in md
  assert '| b | 0 of 1 | – |' in md and '`row=b/seed=0`: missing (no metrics yet)' in md


def test_report_errors(tmp_path):
  with pytest.raises(UserError, match='no runs'):
    report.write_report(str(tmp_path))
  with pytest.raises(UserError, match='not a directory'):
    report.write_report(str(tmp_path / 'nope'))


def test_help(capsys):
  assert sweep.main(['sweep', '--help']) == 0
  out = capsys.readouterr().out
  assert 'Completion marker' in out and '--print_commands' in out
