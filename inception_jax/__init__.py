"""inception_jax: GoogLeNet and Inception v3 in JAX/Flax, with the training system to reproduce them."""

from inception_jax import xla_flags as _xla_flags

__version__ = "0.1.0"

# Before any JAX computation: XLA reads XLA_FLAGS once, when its CPU backend starts.
_xla_flags.apply()
