r"""Table 3, row 8: + BN-auxiliary = Inception v3. Paper: 21.2% top-1, 5.6% top-5 error (4.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Section 10: "BN-auxiliary refers to
the version in which the fully connected layer of the auxiliary classifier is also
batch-normalized, not just the convolutions"; the paper calls this last row Inception-v3 (and its
21.2% / 5.6% single-crop errors are the abstract's numbers).

Change from row 7: ``model_overrides.bn_auxiliary`` False -> True (only). The result is the
project's Inception v3 recipe (configs/inception_v3_imagenet.py) with the stem spelled out.

  python train.py --config=configs/ladder/08_bn_auxiliary.py --workdir=/ckpt/ladder/08
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'model_overrides.bn_auxiliary': True}
get_config = common.row(__file__, CHANGES, previous='07_factorized_7x7.py',
                        row='+BN-auxiliary', top1_error=21.2, top5_error=5.6, cost_bn_ops=4.8)
