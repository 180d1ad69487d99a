"""``python -m inception_jax.tools.sweep``: flags to a sweep config, then :func:`run_sweep`."""

from __future__ import annotations

from typing import Sequence

from inception_jax import errors
from inception_jax.config import loading as config_loading
from inception_jax.errors import UserError
from inception_jax.tools.sweep.runner import run_sweep


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
    from inception_jax.tools import sweep  # pylint: disable=g-import-not-at-top
    # The package docstring is the sweep's manual.
    print(sweep.__doc__.strip() + '\n\nflags:\n' + fv.get_help())
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
