r"""Inception v3 factorisations, one at a time: each switch off against the released network.

Rethinking the Inception Architecture (Szegedy et al. 2016) factorises convolutions four ways;
each has a switch in ``inception_jax.models.inception_v3`` (default = released = on):

  stem=7x7                  the stem's first 7x7/2 convolution not factorised into 3x3
                            convolutions (Table 3 row "Factorized 7x7" undone);
  factorize_5x5=False       module A's double-3x3 branch back to one 5x5 (Fig. 5 vs Fig. 4);
  asymmetric_7x7=False      modules C and D with full 7x7 instead of 1x7/7x1 pairs (Fig. 6,
                            Section 3.2);
  expanded_3x3=False        module E with a plain 3x3 instead of the parallel 1x3/3x1 bank (Fig. 7).

Default: one variant per switch, that switch off and the others as released, plus the released
network itself: 5 cells x 3 seeds = 15 runs (directories ``variant=released/seed=0``,
``variant=no_asymmetric_7x7/seed=1``, ...). Not the full product: 4 switches give 16 cells, and
Table 3 changes one thing at a time too. Option ``product`` sweeps the full 2^4 product instead
(axes ``stem``, ``factorize_5x5``, ``asymmetric_7x7``, ``expanded_3x3``).

  python -m inception_jax.tools.sweep --config=configs/ablations/inception_v3_factorizations.py \
      --workdir=sweeps/v3
  python -m inception_jax.tools.sweep \
      --config=configs/ablations/inception_v3_factorizations.py:imagenet,product \
      --workdir=/ckpt/v3 --config.overrides.data_dir=/data/tfds --print_commands

Options (``:opt[,opt]``):
  digits (default): the offline quick start (configs/default.py: SGD + cosine, 24 epochs) with the
    network swapped for Inception v3 at 75 px (the trunk's minimum; digits are upscaled),
    width_multiplier 0.25 (about the per-image cost of the quick start's GoogLeNet at 32 px) and
    ``aux_adaptive`` (the released aux head's 5x5/3 pool needs 299 px), evaluated every 2 epochs.
  imagenet: the Inception v3 recipe (configs/inception_v3_imagenet.py: the Cloud TPU reference's
    settings, 299 px, RMSProp, label smoothing, BN-auxiliary, 170 epochs at batch 1024).
  product: the full product of the four switches.
"""

from inception_jax.config import loading as config_loading
from inception_jax.tools import sweep

BASES = {  # dataset option -> (training config, description)
    'digits': ('configs/default.py', 'Inception v3 factorisations on digits (offline)'),
    'imagenet': ('configs/inception_v3_imagenet.py', 'Inception v3 factorisations on ImageNet'),
}
SWITCHES = (
    # (variant name, model_overrides field, value that undoes the factorisation, released value)
    ('stem_7x7', 'stem', '7x7', '3x3'),
    ('no_factorize_5x5', 'factorize_5x5', False, True),
    ('no_asymmetric_7x7', 'asymmetric_7x7', False, True),
    ('no_expanded_3x3', 'expanded_3x3', False, True),
)


def get_config(arg: str | None = None):
  """The factorisation sweep (``arg``: digits | imagenet, optionally ``,product``)."""
  dataset, options = config_loading.dataset_option(arg, default='digits', extra=('product',))
  base, description = BASES[dataset]
  c = sweep.sweep_config(base, seeds=(0, 1, 2), description=description)
  if dataset == 'digits':
    c.overrides.model = 'inception_v3'
    c.overrides.image_size = 75
    c.overrides.model_overrides.aux_adaptive = True
    c.overrides.model_overrides.width_multiplier = 0.25
    c.overrides.eval_every_steps = 44
  if 'product' in options:
    for _, field, off, on in SWITCHES:
      c.axes[f'model_overrides.{field}'] = (on, off)
  else:
    c.variants.released = {}
    for name, field, off, _ in SWITCHES:
      c.variants[name] = {'model_overrides': {field: off}}
  return c
