"""JAX's persistent compilation cache for train.py runs.

Compiling the training step takes seconds on a CPU and tens of seconds on a GPU, and every
restart pays it again: each resume after a preemption, each rerun of a crashed job. With the
persistent cache, a rerun loads the compiled executables from disk instead, in a fraction of
the time (measured: benchmarks/RESULTS.md, Compile times). The cache changes no number: it stores
the executables XLA would have produced.

The cache lives under the run's workdir by default, so it goes where the checkpoints go and
never mixes programs of different runs or machines. It is used only by single-process runs on
a local path. Concurrent writers on a shared filesystem (multi-host) and remote object stores
are not tested, so those runs compile every time. JAX only warns when a cache entry cannot be
read or written (``jax_raise_persistent_cache_errors`` is off by default): a damaged cache costs
a compilation, never a run.
"""

from __future__ import annotations

import os

import jax

CACHE_SUBDIR = 'xla_cache'


def cache_dir_for(flag_value: str | None, workdir: str, process_count: int) -> str | None:
  """The directory to use, or None for no cache.

  Args:
    flag_value: ``--compilation_cache_dir``: None = ``<workdir>/xla_cache``, '' = off, else a
      directory.
    workdir: the run's workdir.
    process_count: ``jax.process_count()``; multi-process runs get no cache.
  """
  if flag_value == '' or process_count > 1:
    return None
  path = flag_value if flag_value is not None else os.path.join(workdir, CACHE_SUBDIR)
  if '://' in path:
    return None
  return os.path.abspath(os.path.expanduser(path))


def enable(flag_value: str | None, workdir: str) -> str | None:
  """Points JAX's persistent compilation cache at :func:`cache_dir_for`'s directory.

  Call it before the first compilation. A cache already configured for JAX (the
  ``JAX_COMPILATION_CACHE_DIR`` environment variable) is kept unless the flag names another.
  Returns the directory, or None when the cache is off or its directory cannot be created (an
  unwritable workdir is then reported by the training loop's own check, with its own message).
  """
  configured = jax.config.jax_compilation_cache_dir
  if flag_value is None and configured:
    return configured  # a cache the user set up (JAX_COMPILATION_CACHE_DIR) wins over ours
  path = cache_dir_for(flag_value, workdir, jax.process_count())
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update('jax_compilation_cache_dir', path)
  return path
