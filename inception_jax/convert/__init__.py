"""Weights trained elsewhere, as this package's variables and checkpoints.

``torchvision``: torchvision's GoogLeNet and Inception v3 state dicts (``.pth`` / safetensors).
The command line is ``python -m inception_jax.tools.convert``.
"""
