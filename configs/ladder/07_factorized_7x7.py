r"""Table 3, row 7: + Factorized 7x7. Paper: 21.6% top-1 error, 5.8% top-5 error (4.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Section 10: "Factorized 7x7 includes
a change that factorizes the first 7x7 convolutional layer into a sequence of 3x3 convolutional
layers" -- the released stem (3x3/2 32, 3x3 32, 3x3 padded 64; Table 1).

Change from row 6: ``model_overrides.stem`` 7x7 -> 3x3 (only). Cost here: 5.30 -> 5.71 G
multiply-adds at 299 px (the paper: 3.8 -> 4.8 G ops).

  python train.py --config=configs/ladder/07_factorized_7x7.py --workdir=/ckpt/ladder/07
"""

import os

from inception_jax import sweep

common = sweep.load_config_module(
    'common.py', relative_to=os.path.dirname(os.path.abspath(__file__)))

CHANGES = {'model_overrides.stem': '3x3'}


def get_config(arg: str | None = None):
  """Row 7 (``arg``: 'imagenet', the default, or 'digits')."""
  c = common.previous('06_label_smoothing.py', arg)
  return common.finish(c, CHANGES, row='+Factorized 7x7', top1_error=21.6, top5_error=5.8,
                       cost_bn_ops=4.8, where='07_factorized_7x7')
