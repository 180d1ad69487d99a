"""User-facing errors: one clear line that says what to do, never a deep traceback.

Every entry point (train.py, ``python -m inception_jax.*``) runs its ``main`` through
:func:`run_cli`, which turns a :class:`UserError` into ``error: <message>`` on stderr and exit
status 2. Library code raises :class:`UserError` (a ``ValueError``) for anything the user can fix.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Any, Callable, NoReturn, Sequence

EXIT_USER_ERROR = 2


class UserError(ValueError):
  """Bad input the user can fix: the message is one line and says what to do."""


def first_line(error: BaseException, limit: int = 200) -> str:
  """How a library's error is quoted inside one of our one-line messages: the first line of its
  text (its type name when it has none), at most ``limit`` characters."""
  text = str(error).strip()
  return (text.splitlines()[0] if text else type(error).__name__)[:limit]


def fail(message: str) -> NoReturn:
  """Print ``error: message`` to stderr and exit with status 2."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USER_ERROR)


def run_cli(main: Callable[[], object]) -> object:
  """Call ``main`` and report a :class:`UserError` as one line instead of a traceback."""
  try:
    return main()
  except UserError as e:
    fail(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the ``python -m inception_jax.*`` tools: a bad flag is a one-line
  :class:`UserError` pointing at ``--help`` (exit status 2 through :func:`run_cli`)."""

  def error(self, message: str) -> NoReturn:
    raise UserError(f'{message} (see {self.prog} --help)')


def parse_absl_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parser (``app.run(..., flags_parser=parse_absl_flags)``) with every error (bad
  values, unknown flags, missing config files) as one ``error:`` line."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(flag_value_error(e, flags.FLAGS, argv) or ' '.join(str(e).split()))
  except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    fail(' '.join(str(e).split()) or type(e).__name__)


_DID_YOU_MEAN = re.compile(r'\s*Did you mean "([^"]+)" instead of "[^"]*"\?\s*')
# absl's IllegalFlagValueError text: "flag --NAME=VALUE: <why>".
_BAD_FLAG_VALUE = re.compile(r'^flag --([^=\s]+)=(.*?): ', re.DOTALL)


def _innermost(error: BaseException) -> BaseException:
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  return error


def config_field_error(error: BaseException) -> str:
  """The offending field of ``config_flags.DEFINE_config_file``'s error for a bad
  ``--config.KEY=VALUE`` (the innermost wrapped exception's first argument, on one line, without
  ml_collections' "Did you mean" suggestion: see :func:`unknown_config_field`)."""
  error = _innermost(error)
  text = ' '.join(str(error.args[0] if error.args else error).split())
  return _DID_YOU_MEAN.split(text)[0].strip()


def unknown_config_field(error: BaseException, argv: Sequence[str], hint: str, *,
                         flag: str = 'config', what: str = 'config field') -> str:
  """One line for config_flags' error on an unknown ``--config.KEY``: the field (its dotted path),
  the flag that named it, ml_collections' "Did you mean" as a sentence of our own, then ``hint``.

  ``unknown config field 'learnig_rate' in --config.learnig_rate=0.1. Did you mean
  'learning_rate'? `python train.py --helpfull` lists the fields``
  """
  error = _innermost(error)
  text = ' '.join(str(error.args[0] if error.args else error).split())
  match = _DID_YOU_MEAN.search(text)
  field = config_field_error(error).strip('\'"')
  prefix = re.compile(rf'^-{{1,2}}(no)?{re.escape(flag)}\.')
  given = [str(a) for a in argv if prefix.match(str(a))]
  # The flags whose dotted path has the unknown key as a component (all of them if none has).
  named = [a for a in given if field in prefix.sub('', a).split('=', 1)[0].split('.')]
  suggestion = match.group(1) if match else None
  if len(named) == 1:  # name the whole path: 'model_overrides.widht' -> its parent too
    path = prefix.sub('', named[0]).split('=', 1)[0].split('.')
    parents = path[:path.index(field)]
    field = '.'.join(parents + [field])
    if suggestion:
      suggestion = '.'.join(parents + [suggestion])
  where = ' '.join(named or given) or 'the flags'
  if suggestion:
    return (f"unknown {what} '{field}' in {where}. Did you mean '{suggestion}'? "
            f'{hint[:1].upper()}{hint[1:]}')
  return f"unknown {what} '{field}' in {where}; {hint}"


def flag_value_error(error: BaseException, flag_values: Any, argv: Sequence[str] = ()
                     ) -> str | None:
  """``expected an integer for global_batch_size, got "abc"`` when absl rejected a value that does
  not parse as its flag's type (``--config.KEY`` overrides are named by their field); None for any
  other error (e.g. an integer out of its flag's bounds keeps absl's message)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  match = _BAD_FLAG_VALUE.match(str(error))
  if not match:
    return None
  name, value = match.groups()
  try:
    parser = flag_values[name].parser
  except (KeyError, AttributeError):
    return None
  for arg in argv:  # the value as typed (absl's message cannot tell where a ': ' in it ends)
    arg = str(arg)
    if arg.startswith((f'--{name}=', f'-{name}=')):
      value = arg.split('=', 1)[1]
  if isinstance(parser, flags.BooleanParser):
    expected = 'true or false'
  elif isinstance(parser, (flags.IntegerParser, flags.FloatParser)):
    try:
      parser.convert(value)
      return None  # it is a number: absl rejected it for another reason (a bound)
    except (TypeError, ValueError):
      expected = 'an integer' if isinstance(parser, flags.IntegerParser) else 'a number'
  else:
    return None
  field = name.split('.', 1)[1] if '.' in name else f'--{name}'
  return f'expected {expected} for {field}, got "{value}"'


class _NoLibraryTracebacks(logging.Filter):
  """Keeps the first line of a library's error log and drops its traceback (the caller turns the
  error into one line of its own)."""

  def __init__(self, packages: tuple[str, ...]):
    super().__init__()
    self.packages = tuple(f'/{p}/' for p in packages)

  def filter(self, record: logging.LogRecord) -> bool:
    if record.exc_info and any(p in record.pathname for p in self.packages):
      message = record.getMessage().strip().splitlines()
      record.msg = (message[0][:300] if message else '') + ' (details with --verbosity=1)'
      record.args = ()
      record.exc_info = record.exc_text = None
    return True


def hide_library_tracebacks(packages: tuple[str, ...] = ('orbax',)) -> None:
  """Orbax logs a failed background write (e.g. a full disk) with long tracebacks before the
  caller can report it; show their first lines only (the CLI's own ``error:`` line follows)."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.get_absl_handler().addFilter(_NoLibraryTracebacks(packages))
  # TensorStore completes the futures of an aborted write after asyncio closed their loop; Python
  # would print "Exception ignored ... Event loop is closed" with a traceback for each.
  default_hook = sys.unraisablehook

  def hook(unraisable):
    if (isinstance(unraisable.exc_value, RuntimeError)
        and str(unraisable.exc_value) == 'Event loop is closed'):
      return
    default_hook(unraisable)
  sys.unraisablehook = hook
