r"""GoogLeNet auxiliary-loss weight sweep: aux_weight in {0, 0.1, 0.3, 1.0}, three seeds each.

GoogLeNet (Szegedy et al. 2015, Section 5) adds the two auxiliary classifiers' losses "weighted by
0.3" and reports that they help only a little ("the effect ... was relatively minor (around
0.5%)"); Inception v3 (Szegedy et al. 2016, Section 4) finds they act as regularisers rather than
as gradient highways. This sweep measures the weight: 0 (heads built and run, but no gradient
from them: same compute, same parameters, so images/s and size stay comparable), 0.1, 0.3 (the
paper), 1.0.

  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py \
      --workdir=sweeps/aux
  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py:imagenet \
      --workdir=/ckpt/aux --config.overrides.data_dir=/data/tfds
  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py \
      --workdir=sweeps/aux --config.seeds='(0,)' --print_commands

Options (``:opt[,opt]``):
  digits (default): the offline quick start (configs/default.py: BN-GoogLeNet, 32 px digits,
    24 epochs of SGD + cosine, about 3 minutes per run on a 2-core CPU), evaluated every 2 epochs
    (44 steps) for the learning curves. 4 cells x 3 seeds = 12 runs.
  imagenet: the GoogLeNet recipe (configs/googlenet_imagenet.py: MindCV's training settings on
    BN-GoogLeNet, 224 px, 150 epochs at batch 256), evaluated every epoch as that config does.
    12 runs of 150 epochs; pass ``--config.seeds='(0,)'`` for one seed per cell.
"""

from inception_jax.config import loading as config_loading
from inception_jax.tools import sweep

BASES = {  # dataset option -> (training config, description)
    'digits': ('configs/default.py', 'GoogLeNet aux-loss weight on digits (offline)'),
    'imagenet': ('configs/googlenet_imagenet.py', 'GoogLeNet aux-loss weight on ImageNet'),
}


def get_config(arg: str | None = None):
  """The aux-weight sweep (``arg``: 'digits' or 'imagenet')."""
  dataset, _ = config_loading.dataset_option(arg, default='digits')
  base, description = BASES[dataset]
  c = sweep.sweep_config(base, seeds=(0, 1, 2), description=description)
  if dataset == 'digits':
    c.overrides.eval_every_steps = 44
  c.axes['aux_weight'] = (0.0, 0.1, 0.3, 1.0)
  return c
