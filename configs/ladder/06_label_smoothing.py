r"""Table 3, row 6: + Label Smoothing. Paper: 22.8% top-1 error, 6.1% top-5 error (3.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Section 7, label-smoothing
regularisation: the target is (1 - eps) one-hot + eps / K uniform, eps = 0.1 on ImageNet
(K = 1000); the paper reports about 0.2% absolute improvement in both top-1 and top-5 error.

Change from row 5: ``label_smoothing`` 0.0 -> 0.1 (only).

  python train.py --config=configs/ladder/06_label_smoothing.py --workdir=/ckpt/ladder/06
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'label_smoothing': 0.1}
get_config = common.row(__file__, CHANGES, previous='05_rmsprop.py',
                        row='+Label Smoothing', top1_error=22.8, top5_error=6.1, cost_bn_ops=3.8)
