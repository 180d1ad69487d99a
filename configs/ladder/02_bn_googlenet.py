r"""Table 3, row 2: BN-GoogLeNet. Paper: 26.8% top-1 error, top-5 not given (1.5 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Table 3: GoogLeNet with batch
normalisation (Ioffe & Szegedy 2015) after every convolution; local response normalisation and
conv biases go (the registry's ``googlenet``; the aux heads' fully connected layers have no BN).
Same recipe as row 1 (configs/googlenet_imagenet.py, which trains exactly this network).

Change from row 1: ``model`` googlenet_2014 -> googlenet (only).

  python train.py --config=configs/ladder/02_bn_googlenet.py --workdir=/ckpt/ladder/02
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'model': 'googlenet'}
get_config = common.row(__file__, CHANGES, previous='01_googlenet.py',
                        row='BN-GoogLeNet', top1_error=26.8, top5_error=None, cost_bn_ops=1.5)
