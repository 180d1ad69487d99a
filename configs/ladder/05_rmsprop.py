r"""Table 3, row 5: Inception-v2 + RMSProp. Paper: 23.1% top-1 error, 6.3% top-5 error (3.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Section 8: "our best models were
achieved using RMSProp with decay of 0.9 and eps = 1.0" (TF RMSProp: eps inside the square root,
mean square started at 1, momentum 0.9 as the TF-slim scripts; see inception_jax/training).

Change from row 4: ``optimizer`` sgd -> rmsprop (only; ``rmsprop_decay`` 0.9 and
``rmsprop_epsilon`` 1.0 are already set and unused by SGD).

  python train.py --config=configs/ladder/05_rmsprop.py --workdir=/ckpt/ladder/05
"""

import os

from inception_jax import sweep

common = sweep.load_config_module(
    'common.py', relative_to=os.path.dirname(os.path.abspath(__file__)))

CHANGES = {'optimizer': 'rmsprop'}


def get_config(arg: str | None = None):
  """Row 5 (``arg``: 'imagenet', the default, or 'digits')."""
  c = common.previous('04_inception_v2.py', arg)
  return common.finish(c, CHANGES, row='+RMSProp', top1_error=23.1, top5_error=6.3,
                       cost_bn_ops=3.8, where='05_rmsprop')
