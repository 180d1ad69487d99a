r"""Table 3, row 3: BN-Inception. Paper: 25.2% top-1 error, 7.8% top-5 error (2.0 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Table 3 quotes Ioffe & Szegedy's
batch-normalised Inception ("BN-x30" in their Fig. 3, 74.8% single-crop top-1). This row is
BN-GoogLeNet (row 2) with each 5x5 convolution replaced by two 3x3 convolutions (the
factorisation of Rethinking, Fig. 1/Fig. 5, which BN-Inception introduced), nothing else.

Change from row 2: ``model_overrides.factorize_5x5`` unset (False) -> True (only).

Where it differs from Ioffe & Szegedy's network (their Section 4.1 and appendix Fig. 5):
  * widths: ours keeps GoogLeNet's Table 1 filter counts (the two 3x3 have the 5x5's width); theirs
    re-tunes them (e.g. 3a: 64 1x1, 64->64 3x3, 64->96->96 double 3x3, 32 pool projection);
  * grid reductions: theirs has a third 28x28 module (3c) and makes 3c and 4e stride-2 modules
    (3x3/2 convolutions next to a max-pool branch passed through without projection) instead of
    GoogLeNet's max pools between the stages; ours keeps the nine modules and the 3x3/2 max pools;
  * pooling branch: theirs uses average pooling in most modules (max in 5b), ours 3x3 max pool with
    a 1x1 projection everywhere;
  * stem: theirs makes the first 7x7 convolution depthwise-separable (depth multiplier 8); ours a
    plain 7x7/2 with 64 filters;
  * auxiliary classifiers: ours keeps GoogLeNet's two (weight 0.3); their paper lists none for
    this network (TF-slim's ``inception_v2`` port of it has none);
  * recipe: their 25.2% used the BN-x30 recipe (learning rate x30, dropout removed, L2 weight decay
    / 5, learning-rate decay 6x faster, LRN removed, more thorough shuffling, fewer photometric
    distortions); this row keeps rows 1-2's recipe so that only the architecture changes.

  python train.py --config=configs/ladder/03_bn_inception.py --workdir=/ckpt/ladder/03
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'model_overrides.factorize_5x5': True}
get_config = common.row(__file__, CHANGES, previous='02_bn_googlenet.py',
                        row='BN-Inception', top1_error=25.2, top5_error=7.8, cost_bn_ops=2.0)
