"""inception_jax: GoogLeNet and Inception v3 in JAX/Flax, with the training system to reproduce them."""

import os as _os

from inception_jax import xla_flags as _xla_flags

__version__ = "0.1.0"

# Before any JAX computation: XLA reads XLA_FLAGS once, when its CPU backend starts.
_xla_flags.apply()

# TensorFlow serves only tf.data here and is imported later, by the input pipeline. Before it is:
# its oneDNN graph rewrites off (none of our tf.data ops use them, but TensorFlow turns them on
# only on some CPUs, AVX-512 VNNI and newer, and says so on stderr at import even under
# TF_CPP_MIN_LOG_LEVEL, so the first run's output would depend on the CPU), and its C++ INFO and
# WARNING logs off. A value the user set wins.
_os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
_os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
