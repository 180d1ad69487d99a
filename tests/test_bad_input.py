"""Bad input: every case is one ``error:`` line on stderr, no traceback, a non-zero exit.

The table below has one row per case. ``cli`` rows run the real ``train.py`` in subprocesses, two
at a time, all from one test (so pytest-xdist starts them once): flag and config-file parsing exist
only there, and one representative of each later stage (validation, devices, data, checkpoints)
goes through the whole command. ``inproc`` rows run what ``train.py`` runs after parsing its flags,
``errors.run_cli(lambda: loop.train_and_evaluate(config, workdir))``, which prints the line and
exits; ``call`` rows do the same for the other entry points (convert, predict, evaluate, the
multi-process set-up). Nothing is compiled before any of these errors, so each costs little.
Warnings that let a run continue (an unreadable file in an image folder, a changed step count) are
tested at the end, and so is the absence of unpickling in the package.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent import futures
from typing import Any, Callable

import jax
import numpy as np
import pytest
from _training_helpers import TinyNet, loop_options, numpy_train_state, tiny_config
import fault_helpers as fh

from inception_jax import errors
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import loop
from inception_jax.training import optimizers

REPO = fh.REPO
DEFAULT = os.path.join(REPO, 'configs', 'default.py')


def _config(**overrides):
  spec = importlib.util.spec_from_file_location('bad_input_default', DEFAULT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  with config.unlocked():
    for key, value in overrides.items():
      target = config
      *parents, leaf = key.split('.')
      for p in parents:
        target = target[p]
      target[leaf] = value
  return config


def _tiny_checkpoint(workdir, *, step=8, total_steps=8) -> str:
  """A TinyNet checkpoint written directly (no compilation), as a finished run leaves it."""
  config = tiny_config(num_train_steps=total_steps)
  lr_fn = optimizers.create_learning_rate_fn(config, 89, total_steps)
  state = numpy_train_state(TinyNet(), optimizers.create_optimizer(config, lr_fn), image_size=12)
  state = state.replace(step=np.asarray(step, np.int32))
  checkpointer = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir))
  checkpointer.save(state, ckpt_lib.build_metadata(config, state, num_classes=10,
                                                   total_steps=total_steps))
  checkpointer.close()
  return str(workdir)


# ----------------------------------------------------------------------------- the table

# (id, kind, what, expected text in the error line). For 'cli', `what` is argv after the
# interpreter (strings; {tmp} is a fresh directory, {tiny} a workdir holding a TinyNet checkpoint)
# plus optional env; for 'inproc', a function of (tmp, tiny) returning the entry point to call.
TRAIN = ['train.py', '--workdir={tmp}/w']
CASES: list[tuple[str, str, Any, str]] = [
    # --- through the real command line: flag and config parsing...
    ('unknown config key', 'cli', TRAIN + ['--config.no_such_field=1'],
     "unknown config field 'no_such_field' in --config.no_such_field=1; `python train.py "
     "--helpfull` lists the fields"),
    ('misspelt config key', 'cli', TRAIN + ['--config.learnig_rate=0.1'],
     "error: unknown config field 'learnig_rate' in --config.learnig_rate=0.1. Did you mean "
     "'learning_rate'? `python train.py --helpfull` lists the fields"),
    ('unknown nested config key', 'cli', TRAIN + ['--config.model_overrides.depth=3'],
     "unknown config field 'model_overrides.depth' in --config.model_overrides.depth=3;"),
    ('batch size not an integer', 'cli', TRAIN + ['--config.global_batch_size=abc'],
     'error: expected an integer for global_batch_size, got "abc"'),
    ('learning rate not a number', 'cli', TRAIN + ['--config.learning_rate=fast'],
     'error: expected a number for learning_rate, got "fast"'),
    ('switch neither true nor false', 'cli', TRAIN + ['--config.tensorboard=maybe'],
     'error: expected true or false for tensorboard, got "maybe"'),
    ('missing config file', 'cli', ['train.py', '--config={tmp}/nope.py', '--workdir={tmp}/w'],
     'nope.py'),
    ('unknown flag', 'cli', TRAIN + ['--no_such_flag=1'], 'no_such_flag'),
    ('stray positional argument', 'cli', TRAIN + ['extra'], "unexpected arguments 'extra'"),
    # ... and a representative of each later stage
    ('unknown model', 'cli', TRAIN + ['--config.model=resnet50'], "unknown model 'resnet50'"),
    ('batch not divisible by the device count', 'cli',
     (TRAIN + ['--config.global_batch_size=64'],
      {'XLA_FLAGS': '--xla_force_host_platform_device_count=3'}),
     'global_batch_size=64 is not divisible by the 3 devices'),
    ('dataset not prepared', 'cli',
     TRAIN + ['--config.dataset=cifar10', '--config.data_dir={tmp}/tfds'], 'cifar10'),
    ('checkpoint of another model in the workdir', 'cli', ['train.py', '--workdir={tiny}'],
     'holds a checkpoint of tinynet'),
    # --- in-process, through errors.run_cli (the lines the commands print)
    ('image too small for the model', 'inproc', {'image_size': 16},
     'image_size=16 is too small for googlenet: it needs at least 31 px'),
    ('zero classes', 'inproc', {'model_overrides.num_classes': 0},
     'num_classes must be positive'),
    ('negative classes', 'inproc', {'model_overrides.num_classes': -3},
     'num_classes must be positive'),
    ('negative train steps', 'inproc', {'num_train_steps': -5},
     'num_train_steps must be non-negative'),
    ('zero learning rate', 'inproc', {'learning_rate': 0.0}, 'learning_rate must be positive'),
    ('negative learning rate', 'inproc', {'learning_rate': -0.1}, 'learning_rate must be positive'),
    ('no length at all', 'inproc', {'num_train_steps': 0, 'num_epochs': 0.0},
     'num_epochs or config.num_train_steps'),
    ('unknown optimizer', 'inproc', {'optimizer': 'lamb'}, "unknown optimizer 'lamb'"),
    ('unknown schedule', 'inproc', {'lr_schedule': 'poly'}, "unknown lr_schedule 'poly'"),
    ('unknown parallel mode', 'inproc', {'parallel': 'vmap'}, "unknown parallel 'vmap'"),
    ('unknown dataset', 'inproc', {'dataset': 'no_such_dataset_xyz'}, 'no_such_dataset_xyz'),
    ('missing image folder', 'inproc', {'dataset': 'folder:/no/such/folder'}, '/no/such/folder'),
    ('batch not divisible by 8 devices', 'inproc', {'global_batch_size': 12},
     'global_batch_size=12 is not divisible by the 8 devices'),
    ('eval batch not divisible by 8 devices', 'inproc', {'eval_batch_size': 100},
     'eval_batch_size=100 is not divisible by the 8 devices'),
    ('more devices than the machine has', 'inproc', {'num_devices': 99},
     'num_devices=99 but this machine has 8'),
    ('batch larger than the train split', 'inproc', {'global_batch_size': 4096},
     'larger than the train split'),
    ('momentum of 1', 'inproc', {'momentum': 1.0}, r'momentum must be in [0, 1)'),
    ('negative weight decay', 'inproc', {'weight_decay': -1e-4}, 'weight_decay must be'),
    ('zero decay rate', 'inproc', {'lr_schedule': 'staircase_exponential', 'decay_rate': 0.0},
     'decay_rate must be positive'),
    ('unknown model override value', 'inproc', {'model_overrides.stem': 'bogus'}, 'stem'),
    ('workdir is under a file', 'inproc', {'workdir': f'{DEFAULT}/w'}, 'is not writable'),
    ('another model, in-process', 'inproc', {'workdir': '{tiny}'},
     'holds a checkpoint of tinynet'),
    ('init_from without a checkpoint', 'inproc', {'tinynet': True, 'init_from': '/no/such/run'},
     'holds no checkpoint'),
    ('incomplete multi-process flags', 'call', 'multiprocess', 'multi-process launch needs all of'),
    ('predict without a checkpoint', 'call', 'predict', 'does not exist'),
    ('evaluate without a checkpoint', 'call', 'evaluate', 'does not exist'),
    ('weights of another model for conversion', 'call', 'resnet', 'looks like torchvision resnet'),
    ('truncated weights file', 'call', 'truncated', 'truncated or not a safetensors file'),
    ('weights file missing', 'call', 'missing', 'does not exist'),
    ('unknown flag of summary', 'call', 'summary', 'unrecognized arguments: --bogus (see'),
    ('report without its sweep directory', 'call', 'report', 'required: sweep_dir (see'),
    ('unknown flag of data.prepare', 'call', 'prepare', 'unrecognized arguments: --bogus (see'),
]


def _fill(arg: str, tmp: str, tiny: str) -> str:
  return arg.replace('{tmp}', tmp).replace('{tiny}', tiny)


def _run_cli_case(what, tmp, tiny) -> tuple[int, str]:
  argv, extra = what if isinstance(what, tuple) else (what, {})
  proc = subprocess.run([sys.executable] + [_fill(a, tmp, tiny) for a in argv], cwd=REPO,
                        capture_output=True, text=True, timeout=300, env=fh.env(**extra))
  return proc.returncode, proc.stderr


def _capture(fn: Callable[[], Any], capsys) -> tuple[int, str]:
  capsys.readouterr()
  code = 0
  try:
    errors.run_cli(fn)
  except SystemExit as e:
    code = e.code
  return code, capsys.readouterr().err


def _inproc_case(what, tmp, tiny) -> Callable[[], Any]:
  what = dict(what)
  workdir = _fill(what.pop('workdir', '{tmp}/w'), tmp, tiny)
  if what.pop('tinynet', False):  # reaches the point after initialisation: TinyNet's is cheap
    config = tiny_config(**what)
    return lambda: loop.train_and_evaluate(config, workdir,
                                           loop_options(model=TinyNet(), num_devices=2))
  config = _config(**what)
  return lambda: loop.train_and_evaluate(config, workdir, loop_options())


def _call_case(what, tmp) -> Callable[[], Any]:
  """Other entry points, called as their ``__main__`` calls them."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  from inception_jax.tools import predict  # pylint: disable=g-import-not-at-top
  from inception_jax.tools import convert as convert_cli  # pylint: disable=g-import-not-at-top
  from inception_jax.training import parallel  # pylint: disable=g-import-not-at-top
  if what == 'multiprocess':  # train.py --num_processes=2 alone
    return lambda: parallel.maybe_initialize_distributed(None, 2, None)
  if what == 'predict':
    return lambda: predict.main(['--checkpoint', os.path.join(tmp, 'none'), '--example'])
  if what == 'summary':
    from inception_jax.tools import summary  # pylint: disable=g-import-not-at-top
    return lambda: summary.main(['--model', 'googlenet', '--bogus'])
  if what == 'report':
    from inception_jax.tools import report  # pylint: disable=g-import-not-at-top
    return lambda: report.main([])
  if what == 'prepare':
    from inception_jax.tools import prepare  # pylint: disable=g-import-not-at-top
    return lambda: prepare.main(['--dataset', 'digits', '--bogus'])
  if what == 'evaluate':
    from inception_jax.inference import evaluation as evaluate  # pylint: disable=g-import-not-at-top
    return lambda: evaluate.evaluate(_config(), os.path.join(tmp, 'none'))
  path = os.path.join(tmp, f'{what}.safetensors')
  if what == 'resnet':
    save_file({'conv1.weight': np.zeros((4, 3, 3, 3), np.float32),
               'layer1.0.conv1.weight': np.zeros((4, 4, 3, 3), np.float32),
               'fc.weight': np.zeros((10, 4), np.float32)}, path)
  elif what == 'truncated':
    save_file({'fc.weight': np.zeros((10, 1024), np.float32)}, path)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
      f.write(data[:len(data) // 2])
  return lambda: convert_cli.main(['--from', 'torchvision', '--model', 'googlenet_tv',
                                   '--weights', path, '--out', os.path.join(tmp, 'out')])


def _check(code: int, err: str, expected: str) -> str | None:
  """None when ``err`` is one ``error:`` line containing ``expected`` and ``code`` != 0."""
  line = fh.last_line(err)
  if code == 0:
    return 'exit status 0'
  if 'Traceback' in err:
    return 'a traceback'
  if not line.startswith('error: '):
    return f'last line {line!r}'
  if expected not in line:
    return f'{expected!r} not in {line!r}'
  return None


@pytest.fixture(scope='module')
def tiny_workdir(tmp_path_factory):
  return _tiny_checkpoint(tmp_path_factory.mktemp('bad_inproc') / 'tiny')


def test_the_table_has_at_least_30_cases():
  assert len(CASES) >= 30
  assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.slow
def test_bad_input_through_the_command_line(tmp_path, tiny_workdir):
  """Every 'cli' row in its own process, two at a time (one test: xdist runs it once)."""
  rows = [(cid, what, expected) for cid, kind, what, expected in CASES if kind == 'cli']
  with futures.ThreadPoolExecutor(2) as pool:
    runs = []
    for i, (cid, what, expected) in enumerate(rows):
      tmp = tmp_path / f'case{i}'
      tmp.mkdir()
      runs.append((cid, expected, pool.submit(_run_cli_case, what, str(tmp), tiny_workdir)))
    problems = {}
    for cid, expected, run in runs:
      code, err = run.result()
      problem = _check(code, err, expected)
      if problem:
        problems[cid] = f'{problem}\n{err[-1500:]}'
  assert not problems, '\n\n'.join(f'{k}: {v}' for k, v in problems.items())


IN_PROCESS = [c for c in CASES if c[1] != 'cli']


@pytest.mark.parametrize('cid,kind,what,expected', IN_PROCESS, ids=[c[0] for c in IN_PROCESS])
def test_bad_input_is_one_error_line(cid, kind, what, expected, tiny_workdir, tmp_path, capsys):
  del cid
  if kind == 'inproc':
    code, err = _capture(_inproc_case(what, str(tmp_path), tiny_workdir), capsys)
  else:
    code, err = _capture(_call_case(what, str(tmp_path)), capsys)
  problem = _check(code, err, expected)
  assert problem is None, f'{problem}\n{err[-2000:]}'


def _parse_config_flags(argv):
  """config_flags on a private FlagValues as train.py defines them: the one-line message for a bad
  ``--config.KEY=VALUE`` (what errors.fail would print after ``error:``), or None."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  argv = ['train.py', *argv]
  try:
    config_flags.DEFINE_config_file('config', DEFAULT, flag_values=fv, lock_config=True,
                                    sys_argv=argv)
    fv(argv)
  except (AttributeError, KeyError) as e:
    return errors.unknown_config_field(e, argv[1:], '`python train.py --helpfull` lists the fields')
  except flags.Error as e:
    return errors.flag_value_error(e, fv, argv)
  return None


@pytest.mark.parametrize('argv,message', [
    (['--config.learnig_rate=0.1'],
     "unknown config field 'learnig_rate' in --config.learnig_rate=0.1. Did you mean "
     "'learning_rate'? `python train.py --helpfull` lists the fields"),
    (['--config.seed=1', '--config.model_overrides.widht_multiplier=0.5'],
     "unknown config field 'model_overrides.widht_multiplier' in "
     "--config.model_overrides.widht_multiplier=0.5. Did you mean "
     "'model_overrides.width_multiplier'? `python train.py --helpfull` lists the fields"),
    (['--config.no_such_field=1'],
     "unknown config field 'no_such_field' in --config.no_such_field=1; `python train.py "
     "--helpfull` lists the fields"),
    (['--config.global_batch_size=abc'], 'expected an integer for global_batch_size, got "abc"'),
    (['--config.seed=1.5'], 'expected an integer for seed, got "1.5"'),
    (['--config.learning_rate=x'], 'expected a number for learning_rate, got "x"'),
    (['--config.model_overrides.width_multiplier=half'],
     'expected a number for model_overrides.width_multiplier, got "half"'),
    (['--config.tensorboard=maybe'], 'expected true or false for tensorboard, got "maybe"'),
    (['--config.learning_rate=0.5', '--config.tensorboard=false'], None),
])
def test_config_override_errors_in_our_words(argv, message):
  """No Python or ml_collections wording: not "invalid literal for int() with base 10", not
  "Did you mean" spliced into our sentence."""
  assert _parse_config_flags(argv) == message


# ----------------------------------------------------------------------------- warnings, not errors


@pytest.mark.slow  # trains
def test_unreadable_files_in_an_image_folder_are_skipped_counted_and_training_continues(
    tmp_path, caplog):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root = tmp_path / 'images'
  rng = np.random.default_rng(0)
  for split, n in (('train', 8), ('val', 2)):
    for name in ('cat', 'dog'):
      (root / split / name).mkdir(parents=True)
      for i in range(n):
        Image.fromarray((rng.random((14, 14, 3)) * 255).astype(np.uint8)).save(
            root / split / name / f'{i}.png')
  (root / 'train' / 'cat' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0' + b'\x00' * 100)
  (root / 'train' / 'dog' / 'readme.txt').write_text('not an image')
  config = tiny_config(dataset=f'folder:{root}', data_dir=str(tmp_path / 'tfds'),
                       global_batch_size=8, eval_batch_size=8, num_train_steps=2,
                       checkpoint_every_steps=0, log_every_steps=2)
  with caplog.at_level('WARNING'):
    result = loop.train_and_evaluate(config, str(tmp_path / 'w'),
                                     loop_options(model=TinyNet(num_classes=2), num_devices=2))
  assert result.step == 2 and result.final_eval['num_examples'] == 4
  warnings = [r.getMessage() for r in caplog.records if 'skipped 2' in r.getMessage()]
  assert warnings, [r.getMessage() for r in caplog.records]


def test_changed_step_count_is_allowed_with_a_warning(tmp_path, capsys):
  workdir = _tiny_checkpoint(tmp_path / 'w', step=8, total_steps=8)
  result = loop.train_and_evaluate(tiny_config(num_train_steps=6), workdir,
                                   loop_options(model=TinyNet(), num_devices=2))
  assert result.resumed_from == 8 and result.final_eval['num_examples'] == 360
  assert 'warning: num_train_steps changed from 8 to 6' in capsys.readouterr().out


# ----------------------------------------------------------------------------- security


def test_nothing_in_the_package_can_unpickle_untrusted_files():
  """No pickle, no torch.load without weights_only=True, no np.load(allow_pickle=True), no
  eval/exec of strings and no shell: files and paths from users are only ever read as data."""
  import re  # pylint: disable=g-import-not-at-top
  package = os.path.join(REPO, 'inception_jax')
  sources = [os.path.join(d, f) for d, _, fs in os.walk(package) for f in fs if f.endswith('.py')]
  sources.append(os.path.join(REPO, 'train.py'))
  assert len(sources) > 20

  def problems(code: str) -> tuple[list[str], int]:
    code = re.sub(r'(?s)""".*?"""|\'\'\'.*?\'\'\'', '', code)         # docstrings
    code = '\n'.join(l.split('#')[0] for l in code.splitlines())        # comments
    found = []
    for pattern in (r'\bimport\s+(c?pickle|dill|joblib|shelve|marshal)\b',
                    r'\bfrom\s+(c?pickle|dill|joblib|shelve|marshal)\b',
                    r'\bpickle\.loads?\(', r'allow_pickle\s*=\s*True', r'(?<![\w.])eval\(',
                    r'(?<![\w.])exec\(',
                    r'read_pickle', r'os\.system\(', r'shell\s*=\s*True'):
      found += [m.group(0) for m in re.finditer(pattern, code)]
    loads = list(re.finditer(r'torch\.load\(([^)]*)\)', code))
    found += [m.group(0) for m in loads if not re.search(r'weights_only\s*=\s*True', m.group(1))]
    return found, len(loads)

  # The scan itself catches what it should.
  assert len(problems('import pickle\nx = torch.load(f)\nnp.load(f, allow_pickle=True)\n'
                      'eval(s)\nmodel.eval()\nast.literal_eval(s)')[0]) == 4
  bad, torch_loads = [], 0
  for path in sources:
    found, n = problems(open(path, encoding='utf-8').read())
    bad += [f'{os.path.relpath(path, REPO)}: {f}' for f in found]
    torch_loads += n
  assert not bad, bad
  assert torch_loads >= 1  # the converter's torch.load(..., weights_only=True) was seen
