r"""Table 3, row 7: + Factorized 7x7. Paper: 21.6% top-1 error, 5.8% top-5 error (4.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Section 10: "Factorized 7x7 includes
a change that factorizes the first 7x7 convolutional layer into a sequence of 3x3 convolutional
layers" -- the released stem (3x3/2 32, 3x3 32, 3x3 padded 64; Table 1).

Change from row 6: ``model_overrides.stem`` 7x7 -> 3x3 (only). Cost here: 5.30 -> 5.71 G
multiply-adds at 299 px (the paper: 3.8 -> 4.8 G ops).

  python train.py --config=configs/ladder/07_factorized_7x7.py --workdir=/ckpt/ladder/07
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'model_overrides.stem': '3x3'}
get_config = common.row(__file__, CHANGES, previous='06_label_smoothing.py',
                        row='+Factorized 7x7', top1_error=21.6, top5_error=5.8, cost_bn_ops=4.8)
