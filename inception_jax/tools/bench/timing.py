"""Clocks for the benchmark: per-call wall and CPU seconds, their summary, and the machine's peak.

The peak is measured in the same run on the same backend (a large matrix product), so that a
step's share of it compares like with like whatever the machine.
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any, Callable, Sequence

# Dense bf16 tensor-core peak of GPUs we know (FLOP/s), for MFU against the data sheet.
SPEC_PEAK_BF16 = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12}


class Times(list):
  """Per-call wall seconds, with the process CPU seconds (user + system) of each call."""
  cpu: list[float]


def summarize_times(seconds: Sequence[float], batch: int) -> dict[str, Any]:
  """Median/min/max of per-step seconds and the matching images/s (and CPU seconds per step,
  which other processes on the machine disturb much less than wall time)."""
  med = statistics.median(seconds)
  out = {
      'images_per_second': {'median': batch / med, 'min': batch / max(seconds),
                            'max': batch / min(seconds)},
      'step_seconds': {'median': med, 'min': min(seconds), 'max': max(seconds),
                       'all': list(seconds)},
  }
  cpu = getattr(seconds, 'cpu', None)
  if cpu:
    out['cpu_seconds_per_step'] = statistics.median(cpu)
  return out


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def time_calls(call: Callable[[], Any], steps: int, warmup: int) -> Times:
  """Per-call wall seconds of ``call`` (which must block until its result is ready)."""
  for _ in range(warmup):
    call()
  times = Times()
  times.cpu = []
  for _ in range(steps):
    c, t = _cpu_seconds(), time.perf_counter()
    call()
    times.append(time.perf_counter() - t)
    times.cpu.append(_cpu_seconds() - c)
  return times


def measure_peak(half: bool, size: int | None = None, repeats: int = 5) -> dict[str, Any]:
  """FLOP/s of a large square matrix product on JAX's default backend (best of ``repeats``)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  on_gpu = jax.default_backend() == 'gpu'
  n = size or (8192 if on_gpu else 3072)
  dtype = jnp.bfloat16 if half else jnp.float32
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  times = time_calls(lambda: jax.block_until_ready(f(a, b)), repeats, 1)
  return {'flops_per_second': 2 * n ** 3 / min(times), 'matmul_size': n,
          'dtype': jnp.dtype(dtype).name, 'backend': jax.default_backend()}


def spec_peak(device_kind: str) -> float | None:
  """The data sheet's dense bf16 peak of a GPU named ``device_kind``, None for one we don't know."""
  return next((v for k, v in SPEC_PEAK_BF16.items() if k in device_kind), None)
