"""Weights trained elsewhere, as this package's variables and checkpoints.

``torchvision``: torchvision's GoogLeNet and Inception v3 state dicts (``.pth`` / safetensors).
``keras``: Keras's ``InceptionV3`` (``.keras``, ``.h5``, ``.weights.h5``).
``timm``: timm's ``inception_v3`` variants (torchvision's network; the variant sets the input).
``common``: what every weight source shares (abstract variables of a registered model, the
converted checkpoint and its metadata). The command line is ``python -m inception_jax.tools.convert``.
"""
