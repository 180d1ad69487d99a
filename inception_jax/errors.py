"""User-facing errors: one clear line that says what to do, never a deep traceback.

Every entry point (train.py, ``python -m inception_jax.*``) runs its ``main`` through
:func:`run_cli`, which turns a :class:`UserError` into ``error: <message>`` on stderr and exit
status 2. Library code raises :class:`UserError` (a ``ValueError``) for anything the user can fix.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, NoReturn, Sequence

EXIT_USER_ERROR = 2


class UserError(ValueError):
  """Bad input the user can fix: the message is one line and says what to do."""


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
    fail(' '.join(str(e).split()))
  except (AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    fail(' '.join(str(e).split()) or type(e).__name__)


def config_field_error(error: BaseException) -> str:
  """The offending field of ``config_flags.DEFINE_config_file``'s error for a bad
  ``--config.KEY=VALUE`` (the innermost wrapped exception's first argument, on one line)."""
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  return ' '.join(str(error.args[0] if error.args else error).split())


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
