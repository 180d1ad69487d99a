r"""Table 3, row 1: GoogLeNet. Paper: 29% top-1 error, 9.2% top-5 error (1.5 G ops).

Rethinking the Inception Architecture (Szegedy et al. 2016), Table 3 quotes GoogLeNet (Szegedy et
al. 2014) single-crop. This row is the 2014 network (``googlenet_2014``: no batch norm, conv
biases, local response normalisation in the stem, both auxiliary classifiers at weight 0.3,
dropout 0.4/0.7) trained with the project's GoogLeNet recipe (configs/googlenet_imagenet.py:
MindCV's training settings, SGD momentum 0.9 at 0.045 per 256 images, 5 warm-up epochs then
cosine to 0, label smoothing 0.1, 224 px inception crops, 150 epochs at batch 256).

Change from configs/googlenet_imagenet.py: ``model`` googlenet -> googlenet_2014 (only).
Caveat: the 2014 network trained with asynchronous SGD at an unpublished rate and schedule; the
recipe's run (MindCV, 72.89 % top-1) trained a GoogLeNet without batch norm too, but also without
biases, LRN or auxiliary heads. ``configs/googlenet_imagenet.py:paper`` holds the paper's own
setting.

  python train.py --config=configs/ladder/01_googlenet.py --workdir=/ckpt/ladder/01 \
      --config.data_dir=/data/tfds
  python train.py --config=configs/ladder/01_googlenet.py:digits --workdir=/tmp/ladder01  # smoke
"""

from inception_jax.config import loading as config_loading

common = config_loading.load_config_module('common.py', relative_to=__file__)

CHANGES = {'model': 'googlenet_2014'}
get_config = common.row(__file__, CHANGES, recipe='googlenet_imagenet',
                        digits=dict(image_size=32, width_multiplier=0.25),
                        row='GoogLeNet', top1_error=29.0, top5_error=9.2, cost_bn_ops=1.5)
