"""Weights trained elsewhere, as this package's variables and checkpoints.

``torchvision``: torchvision's GoogLeNet and Inception v3 state dicts (``.pth`` / safetensors).
``common``: what every weight source shares (abstract variables of a registered model, the
converted checkpoint and its metadata). The command line is ``python -m inception_jax.tools.convert``.
"""
