r"""Table 3, row 2: BN-GoogLeNet. Paper: 26.8% top-1 error, top-5 not given (1.5 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Table 3: GoogLeNet with batch
normalisation (Ioffe & Szegedy 2015) after every convolution; local response normalisation and
conv biases go (the registry's ``googlenet``; the aux heads' fully connected layers have no BN).
Same recipe as row 1 (configs/googlenet_imagenet.py, which trains exactly this network).

Change from row 1: ``model`` googlenet_2014 -> googlenet (only).

  python train.py --config=configs/ladder/02_bn_googlenet.py --workdir=/ckpt/ladder/02
"""

import os

from inception_jax import sweep

common = sweep.load_config_module(
    'common.py', relative_to=os.path.dirname(os.path.abspath(__file__)))

CHANGES = {'model': 'googlenet'}


def get_config(arg: str | None = None):
  """Row 2 (``arg``: 'imagenet', the default, or 'digits')."""
  c = common.previous('01_googlenet.py', arg)
  return common.finish(c, CHANGES, row='BN-GoogLeNet', top1_error=26.8, top5_error=None,
                       cost_bn_ops=1.5, where='02_bn_googlenet')
