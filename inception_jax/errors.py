"""User-facing errors: one clear line that says what to do, never a deep traceback.

Every entry point (train.py, ``python -m inception_jax.*``) runs its ``main`` through
:func:`run_cli`, which turns a :class:`UserError` into ``error: <message>`` on stderr and exit
status 2. Library code raises :class:`UserError` (a ``ValueError``) for anything the user can fix.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn

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
