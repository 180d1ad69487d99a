r"""Table 3, row 5: Inception-v2 + RMSProp. Paper: 23.1% top-1 error, 6.3% top-5 error (3.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Section 8: "our best models were
achieved using RMSProp with decay of 0.9 and eps = 1.0" (TF RMSProp: eps inside the square root,
mean square started at 1, momentum 0.9 as the TF-slim scripts; see inception_jax/training).

Change from row 4: ``optimizer`` sgd -> rmsprop (only; ``rmsprop_decay`` 0.9 and
``rmsprop_epsilon`` 1.0 are already set and unused by SGD).

  python train.py --config=configs/ladder/05_rmsprop.py --workdir=/ckpt/ladder/05
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'optimizer': 'rmsprop'}
get_config = common.row(__file__, CHANGES, previous='04_inception_v2.py',
                        row='+RMSProp', top1_error=23.1, top5_error=6.3, cost_bn_ops=3.8)
