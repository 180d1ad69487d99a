r"""Table 3, row 4: Inception-v2. Paper: 23.4% top-1 error, top-5 not given (3.8 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Sections 6 and 10, Table 3: the
Inception v3 network before the three later changes of the ladder, i.e. the factorised modules
(Fig. 5: 5x5 as two 3x3; Fig. 6: n x n as 1xn + nx1, n = 7; Fig. 7: the expanded 3x3 bank), the
efficient grid reductions (Fig. 10) and 299 px inputs (Table 1), trained with SGD (momentum 0.9)
and no label smoothing; the stem's first layer is still one 7x7/2 convolution (factorised only at
row 7, "Factorized 7x7") and the auxiliary classifier's fully connected layer is not batch
normalised (row 8, "BN-auxiliary"). The rest is the project's Inception v3 recipe
(configs/inception_v3_imagenet.py, the Cloud TPU reference run: learning rate 0.165 per 256
images decayed 0.94 every 3 epochs, Polyak averaging 0.995, aux weight 0.4, dropout 0.2, 170
epochs at batch 1024; ``configs/inception_v3_imagenet.py:paper`` is the paper's Section 8
setting); Section 8 gives one learning rate for both optimisers, and RMSProp with eps = 1.0 moves
like momentum SGD while gradients are small, so the rate is kept when row 5 swaps the optimiser.

Changes from configs/inception_v3_imagenet.py: ``optimizer`` rmsprop -> sgd, ``label_smoothing``
0.1 -> 0.0, ``model_overrides.stem`` (3x3) -> 7x7, ``model_overrides.bn_auxiliary`` True -> False.
From this row on, every row changes exactly one field of the row before it; row 8 is the recipe.

Notes: the paper's Table 1 (its "Inception-v2" outline) already draws the 3x3 stem that row 7
introduces; we follow the ladder's text. The released layout that ``inception_v3`` reproduces
(TF-slim / torchvision) also differs from Table 1 in widths and in module A's extra 5x5 branch.
Cost: 5.30 G multiply-adds with the 7x7 stem against 5.71 G with the 3x3 stem at 299 px
(``python -m inception_jax.tools.summary --model inception_v3 --set stem=7x7``), where the paper
lists 3.8 and 4.8 G ops.

  python train.py --config=configs/ladder/04_inception_v2.py --workdir=/ckpt/ladder/04
"""

from inception_jax import config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'optimizer': 'sgd', 'label_smoothing': 0.0, 'model_overrides.stem': '7x7',
           'model_overrides.bn_auxiliary': False}
# On digits: 75 px (the trunk's minimum), width 0.25, and the adaptive aux pool, since the released
# aux head needs 299 px.
get_config = common.row(__file__, CHANGES, recipe='inception_v3_imagenet',
                        digits=dict(image_size=75, width_multiplier=0.25, aux_adaptive=True),
                        row='Inception-v2', top1_error=23.4, top5_error=None, cost_bn_ops=3.8)
