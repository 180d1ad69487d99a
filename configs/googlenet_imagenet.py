r"""GoogLeNet (with batch norm) on ImageNet (ILSVRC 2012): MindCV's recipe, and the paper's setting.

  python train.py --config=configs/googlenet_imagenet.py --workdir=/ckpt/googlenet \
      --config.data_dir=/data/tfds
  python -m inception_jax.tools.plan --config=configs/googlenet_imagenet.py --devices=8

Expected result: none stated for this network. The config copies MindCV's training settings, but
MindCV's 72.89 % top-1 belongs to a different network (MindCV's GoogLeNet: no batch norm, no
auxiliary heads; see "Network" below), and this config has no ImageNet run of its own
(benchmarks/RESULTS.md lists what was measured).

Choice of the recipe. Of the public from-scratch GoogLeNet recipes, only MindCV's states both its
global batch and its result: mindspore-lab/mindcv ``configs/googlenet/README.md`` reports 72.89 %
top-1 / 90.89 % top-5 (Ascend 910*, 72.68 % on Ascend 910) with "cards 8, batch size 32", i.e. a
global batch of 256, trained by ``configs/googlenet/googlenet_ascend.yaml``. TF-slim's
``inception_v1`` checkpoint (69.8 %) comes with no training flags or batch; torchvision's
references say "The weights of the GoogLeNet model are ported from the original paper rather than
trained from scratch" (references/classification/README.md). The paper (Szegedy et al. 2015)
trained asynchronously and states neither batch nor length: it is kept as the ``:paper`` variant.

``configs/googlenet_imagenet.py`` (default): MindCV's training settings, field by field, read in
``googlenet_ascend.yaml`` as stored at mindcv commit b63150f (the mindcv change that set this yaml
to 150 epochs, ``lr`` 0.045 and ``cosine_decay``, from 300 epochs at ``lr`` 0.01 with
``warmup_cosine_decay``, also updated the README's figures, so the 72.89 % is this yaml's) and the
defaults of MindCV's ``config.py`` for flags the yaml leaves out:

  * Batch: ``batch_size`` 32 per card x 8 cards -> ``global_batch_size`` 256; ``drop_remainder``
    True (as here).
  * Optimiser: ``opt`` 'momentum', ``momentum`` 0.9, ``use_nesterov`` False -> ``sgd`` 0.9;
    ``weight_decay`` 0.00004 -> 4e-5 (L2 on the kernels here; MindCV's default
    ``weight_decay_filter`` 'disable' also decays the classifier's bias); ``clip_grad`` False
    (default) -> no clipping; ``loss_scale`` 1024 with ``amp_level`` 'O0' (float32: the fixed
    scale cancels) -> ``half_precision`` False.
  * Learning rate: ``scheduler`` 'cosine_decay', ``lr`` 0.045, ``min_lr`` 0.0, ``warmup_epochs`` 5,
    ``decay_epochs`` 145 (5 + 145 = ``epoch_size`` 150), per step (``lr_epoch_stair`` False) ->
    ``cosine`` from 0.045 at batch 256 to 0 after 5 linear warm-up epochs; ``epoch_size`` 150 ->
    ``num_epochs`` 150.
  * Loss: ``label_smoothing`` 0.1; ``ema`` False (default) -> ``ema_decay`` 0.
  * Data: ``image_size`` 224; ``scale`` [0.08, 1.0], ``ratio`` [0.75, 1.333], ``hflip`` 0.5,
    ``interpolation`` 'bilinear' -> inception_crop (8-100 % of the area, aspect 3/4-4/3), random
    flip, bilinear resize; ``crop_pct`` 0.875 (resize to 256, centre 224) -> ``eval_crop_fraction``
    0.875; ``mean``/``std`` ImageNet's (defaults) -> ``normalization`` 'imagenet'. Differs: the
    crop is drawn another way. MindCV's (MindSpore's ``RandomCropDecodeResize``, as
    torchvision's ``RandomResizedCrop``) draws the area fraction uniformly in ``scale``; this
    pipeline uses TF's ``sample_distorted_bounding_box``, which draws the crop's height uniformly
    between the heights of the smallest and the largest allowed area, so large crops are more
    frequent (inception_jax/data/preprocessing.py). Differs: MindCV's default ``color_jitter`` 0.4
    (brightness, contrast, saturation); this pipeline has no colour augmentation.
  * Cadence: ``val_while_train`` True, ``val_interval`` 1 -> evaluation every epoch (5004 steps);
    ``ckpt_save_interval`` 1, ``keep_checkpoint_max`` 10 -> a checkpoint every epoch, 10 kept.

Network: not MindCV's. This config trains the project's BN-GoogLeNet (``googlenet``: the paper's
Table 1 network with batch norm, 5x5 branches, 3x3/2 pool after 4e, dropout 0.4, both auxiliary
classifiers at loss weight 0.3, paper §5), which the Table 3 ladder (configs/ladder/01, 02) and
the aux-weight ablation build on. MindCV's ``googlenet`` has no batch norm, no biases, no local
response normalisation, a 2x2/2 pool after 4e, dropout ``drop_rate`` 0.2 and ``aux_logits``
False (``aux_factor`` 0). So what is copied from MindCV is the training recipe (batch, optimiser,
schedule, length, loss, crop ranges, evaluation crop, normalisation), not the network nor its
result. ``--config.model_overrides.aux_logits=False --config.aux_weight=0
--config.model_overrides.dropout_rate=0.2 --config.model_overrides.maxpool4_window=2`` comes
closest (batch norm stays).

Other batch sizes. Scaling rule: linear in the global batch, MindCV's README: "it is recommended
to keep the global batch size unchanged for reproduction or adjust the learning rate linearly to a
new global batch size" -> ``learning_rate`` 0.045 at ``base_batch_size`` 256; the schedule is in
epochs. MindCV's batch is 256 (``recipe_verified_batch_size``); training above it prints a
warning.

``configs/googlenet_imagenet.py:paper`` is the paper's recipe, Szegedy et al., "Going Deeper with
Convolutions", CVPR 2015, §6 and §5: "asynchronous stochastic gradient descent with 0.9 momentum"
(synchronous here); "decreasing the learning rate by 4% every 8 epochs" -> staircase 0.96 every 8
epochs; "Polyak averaging" -> EMA 0.9999 (the paper gives no value: the constant
``MOVING_AVERAGE_DECAY`` of the older tensorflow/models ``inception`` code; TF-slim's
``train_image_classifier.py`` averages only when ``--moving_average_decay`` is given, default
None); auxiliary losses "weighted by 0.3"; crops of "8% and 100% of the image area with aspect
ratio ... [3/4, 4/3]"; 224 px. Not in the paper, from TF-slim's ``train_image_classifier.py``:
base rate 0.01 for batch 32, weight decay 4e-5, centre crop 0.875. Extrapolated to batch 1024 by
the linear rule (peak 0.32, reached at the end of 5 linear warm-up epochs, Goyal et al. 2017),
90 epochs (Goyal et al.'s length). The staircase starts after the warm-up: 85 epochs of
x0.96 every 8 epochs is 10 steps, so training ends at 0.96^10 = 0.66x the peak (0.21); the paper
does not say how long it trained, and this length leaves the rate high at the end. No run states
a batch for it (``recipe_verified_batch_size`` 0), so it runs with a warning.
"""

from inception_jax.config import loading as config_loading

imagenet = config_loading.load_config_module('common/imagenet.py', relative_to=__file__)

# MindCV's training settings (mindspore-lab/mindcv configs/googlenet/googlenet_ascend.yaml).
REFERENCE = {
    'recipe_source': ('MindCV googlenet_ascend.yaml training settings, mindspore-lab/mindcv '
                      'configs/googlenet/, batch 8 x 32 = 256 (its 72.89% top-1 is for a '
                      'GoogLeNet without batch norm or aux heads)'),
    'recipe_verified_batch_size': 256,
    'normalization': 'imagenet',      # MindCV mean/std
    'global_batch_size': 256,         # batch_size 32 x 8 cards
    'num_epochs': 150.0,              # epoch_size
    'learning_rate': 0.045,           # lr, for the global batch of 256 (base_batch_size)
    'lr_schedule': 'cosine',          # scheduler cosine_decay, min_lr 0, decay_epochs 145
    'checkpoint_every_steps': 5004,   # ckpt_save_interval 1: every epoch at batch 256
    'keep_checkpoints': 10,           # keep_checkpoint_max
}

# The paper's recipe, extrapolated to batch 1024 (no run states a batch for it).
PAPER = {
    'recipe_source': ('Szegedy et al. 2015, Going Deeper with Convolutions, sections 5-6: '
                      'asynchronous SGD'),
    'num_epochs': 90.0,
    'learning_rate': 0.01,
    'base_batch_size': 32,
    'lr_schedule': 'staircase_exponential',
    'decay_rate': 0.96,
    'decay_epochs': 8.0,
    'label_smoothing': 0.0,
    'ema_decay': 0.9999,
}


def get_config(arg: str | None = None):
  """GoogLeNet / ImageNet: ``arg`` '' (MindCV's recipe on BN-GoogLeNet) or 'paper'."""
  # Both train the schema's network, ``googlenet`` (BN-GoogLeNet).
  return imagenet.recipe(arg, {'reference': REFERENCE, 'paper': PAPER}, where=__file__)
