"""The ImageNet (ILSVRC 2012) base of the recipes; not a config itself.

``configs/googlenet_imagenet.py`` and ``configs/inception_v3_imagenet.py`` (each with its paper's
``:paper`` variant) state only what they change from :func:`base`, and their docstrings cite every
value. Left at the schema's values (``inception_jax.config.schema.base_config``) is ImageNet's
usual pipeline: Inception crops of 8-100 % of the area at aspect ratios 3/4-4/3 (Szegedy et al.
2015, §6; TF-slim; MindCV's ``scale``/``ratio``; the Cloud TPU run raises the lower bound to 10 %),
random flips, the 0.875 centre crop for evaluation (TF-slim's ``central_fraction``, MindCV's
``crop_pct``), Inception normalisation to [-1, 1], and momentum 0.9 (of SGD or of RMSProp).
"""

import os

from inception_jax.config import loading as config_loading
from inception_jax.config import schema

IMAGENET = {
    'dataset': 'imagenet2012',
    # The Cloud TPU run's train_batch_size; both papers' variants are extrapolated to it.
    'global_batch_size': 1024,
    'eval_batch_size': 1000,          # divides the 50,000 validation images
    # TF-slim's default (its inception_v1 / v3 arg scopes), MindCV's weight_decay 0.00004 and the
    # Cloud TPU run's WEIGHT_DECAY: L2 on the kernels.
    'weight_decay': 4e-5,
    # MindCV's warmup_epochs; for the papers' variants, the linear-scaling warm-up of Goyal et al.
    # 2017 that a batch of 1024 needs.
    'warmup_epochs': 5.0,
    # MindCV's label_smoothing, the Cloud TPU run's softmax_cross_entropy(label_smoothing=0.1) and
    # Rethinking the Inception Architecture, §7 (GoogLeNet's paper has none).
    'label_smoothing': 0.1,
    # 5004 steps: an epoch at batch 256 (MindCV's val_interval 1), about four at 1024.
    'eval_every_steps': 5004,
    'checkpoint_every_steps': 1251,   # about every epoch at batch 1024 (1,281,167 images)
}


def base():
  """``schema.base_config()`` with :data:`IMAGENET`."""
  return config_loading.apply_overrides(schema.base_config(), IMAGENET, 'the ImageNet base')


def recipe(arg, variants, *, where, shared=None):
  """A recipe's config: :func:`base` with the changes its variants share (``shared``), then
  those of the variant ``arg`` names (``variants``: name -> changes; the first is the default).
  ``where``: the recipe's file."""
  where = f'configs/{os.path.basename(where)}'
  variant = config_loading.choose_variant(arg, tuple(variants), where)
  c = config_loading.apply_overrides(base(), shared or {}, where)
  return config_loading.apply_overrides(c, variants[variant], f'{where}:{variant}')
