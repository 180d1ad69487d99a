"""``--allocator``: re-executes the benchmark with tcmalloc or jemalloc preloaded.

XLA:CPU allocates its buffers afresh on every call and glibc returns big blocks to the kernel, so
every step page-faults its whole working set back in; a caching malloc changes speed, not numbers.
The library must be preloaded before the process starts, hence a re-execution.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from inception_jax.errors import UserError

_ALLOCATORS = {
    'tcmalloc': ('libtcmalloc_minimal.so.4', 'libtcmalloc.so.4'),
    'jemalloc': ('libjemalloc.so.2',),
}
_LIB_DIRS = ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib',
             '/usr/local/lib')
# Set in the re-executed process, so that it does not re-execute itself again.
_REEXEC_MARK = 'INCEPTION_JAX_BENCH_ALLOCATOR'


def find_allocator(name: str) -> str | None:
  """Path of the shared library for ``name`` ('tcmalloc' or 'jemalloc'), or None."""
  for directory in _LIB_DIRS:
    for lib in _ALLOCATORS[name]:
      path = os.path.join(directory, lib)
      if os.path.exists(path):
        return path
  return None


def loaded_allocator() -> str:
  """The malloc this process runs with, read from its memory map (the JSON records it)."""
  try:
    with open('/proc/self/maps') as f:
      maps = f.read()
  except OSError:
    return 'unknown'
  for name, libs in _ALLOCATORS.items():
    if any(lib.split('.so')[0] in maps for lib in libs):
      return name
  return 'system'


def maybe_reexec(args: argparse.Namespace, argv: Sequence[str]) -> None:
  """Re-executes this benchmark with ``--allocator`` preloaded (before JAX is imported)."""
  if args.allocator == 'system' or os.environ.get(_REEXEC_MARK) == args.allocator:
    return
  if loaded_allocator() == args.allocator:
    return
  path = find_allocator(args.allocator)
  if path is None:
    package = {'tcmalloc': 'libtcmalloc-minimal4', 'jemalloc': 'libjemalloc2'}[args.allocator]
    raise UserError(f'--allocator {args.allocator}: no {args.allocator} library found in '
                    f'{", ".join(_LIB_DIRS)}; install it (Debian/Ubuntu: apt-get install '
                    f'{package}) or use --allocator system')
  env = dict(os.environ)
  env['LD_PRELOAD'] = ':'.join(filter(None, [path, env.get('LD_PRELOAD')]))
  env[_REEXEC_MARK] = args.allocator
  sys.stdout.flush()
  os.execve(sys.executable, [sys.executable, '-m', 'inception_jax.tools.bench', *argv], env)
