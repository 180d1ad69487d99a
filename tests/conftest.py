"""Suite-wide test setup.

Eight virtual CPU devices let the data-parallel code (pmap / shard_map) be tested on one host;
this must run before any JAX backend is initialised, hence at conftest import.

torch and torchvision (when installed) are imported here, before any test module imports
TensorFlow: both bundle LLVM, and torchvision's triton loaded after TensorFlow crashes the process,
so a run that collects a TensorFlow test file before a torch one (``pytest tests/test_evaluate.py
tests/test_bench.py``) would lose its worker.
"""

import jax

import inception_jax  # noqa: F401  (sets its XLA:CPU flag before any backend starts)

try:
  import torch  # pylint: disable=unused-import
  import torchvision  # pylint: disable=unused-import
except ImportError:  # the torch extra is optional; its tests skip
  pass

jax.config.update('jax_num_cpu_devices', 8)
