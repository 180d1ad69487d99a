"""Facts about the machine a figure was measured on: CPUs, load, memory and library versions.

A speed means little without them: the same step runs at different rates on AVX2 and AVX-512,
under load, or with another jaxlib; the report and the JSON carry them next to every figure.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from typing import Any


def load_average() -> list[float] | None:
  """The 1, 5 and 15 minute load averages (other work on the host slows every figure)."""
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def cpu_count() -> int:
  """The CPUs this process may use (its affinity mask), which is what JAX and tf.data use."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def cpu_model() -> str:
  """The CPU by name, family/model and vector ISA: cloud VMs often report only "AMD EPYC", and
  figures move with the floating-point path (AVX2 against AVX-512), so a figure must say which."""
  fields: dict[str, str] = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
          break  # the first processor is enough
  except OSError:
    return platform.processor() or platform.machine()
  flags = set(fields.get('flags', '').split())
  isa = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else ''
  parts = [f'family {fields["cpu family"]} model {fields["model"]}'] if 'cpu family' in fields \
      and 'model' in fields else []
  parts += [isa] if isa else []
  name = fields.get('model name') or platform.processor() or platform.machine()
  return f'{name} ({", ".join(parts)})' if parts else name


def host_peak_rss_bytes() -> int:
  """Peak resident set of this process so far (Linux reports ru_maxrss in KiB)."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss if sys.platform == 'darwin' else rss * 1024)


def device_memory() -> dict[str, Any] | None:
  """The first device's memory counters (peak, in use, limit), or None where it has none (CPU)."""
  import jax  # pylint: disable=g-import-not-at-top
  stats = getattr(jax.devices()[0], 'memory_stats', lambda: None)()
  if not stats:
    return None
  return {k: stats[k] for k in ('peak_bytes_in_use', 'bytes_in_use', 'bytes_limit')
          if k in stats}


def versions() -> dict[str, str]:
  """Python's and the numeric libraries' versions (torch, torchvision, TensorFlow if loaded)."""
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  out = {'python': platform.python_version(), 'jax': jax.__version__,
         'jaxlib': jaxlib.__version__, 'flax': flax.__version__, 'optax': optax.__version__}
  for name in ('torch', 'torchvision', 'tensorflow'):
    module = sys.modules.get(name)
    if module is not None:
      out[name] = module.__version__
  return out
