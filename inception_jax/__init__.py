"""inception_jax: GoogLeNet and Inception v3 in JAX/Flax, with the training system to reproduce them."""

__version__ = "0.1.0"
