r"""Inception v3 on ImageNet (ILSVRC 2012): the Cloud TPU reference run, and the paper's setting.

  python train.py --config=configs/inception_v3_imagenet.py --workdir=/ckpt/v3 \
      --config.data_dir=/data/tfds
  python -m inception_jax.tools.plan --config=configs/inception_v3_imagenet.py --devices=8

Expected result: the cited run's "greater than 78.1% accuracy in about 170 epochs"
(cloud.google.com/tpu/docs/inception-v3-advanced), top-1 on the 50,000 validation images; this
config has no ImageNet run of its own (benchmarks/RESULTS.md lists what was measured).

``configs/inception_v3_imagenet.py`` (default) follows, field by field, the run Google published
for Cloud TPU, trained by tensorflow/tpu ``models/experimental/inception/inception_v3.py`` with its
default flags (``train_batch_size`` 1024, ``train_steps`` 213000 = 170.3 epochs). Every number
below was read in that file in upstream tensorflow/tpu at its last TF 1.x state (``tf.compat.v1``,
the ``WEIGHT_DECAY`` constant, the ``precision`` flag, ``train_steps`` 213000) and in
``inception_preprocessing.py`` next to it. "Differs" marks what this codebase does otherwise.

  * Network: TF-slim ``inception_v3`` (``inception_v3``, BN-auxiliary as released) with its default
    ``dropout_keep_prob=0.8`` -> ``dropout_rate`` 0.2; batch-norm decay ``BATCH_NORM_DECAY =
    0.996`` -> ``model_overrides.bn_momentum`` 0.996; epsilon ``BATCH_NORM_EPSILON = 1e-3``
    matches. Differs: 1001 classes there (background), 1000 here. Differs: every batch norm here
    learns a scale (gamma) and an offset; TF-slim's ``inception_v3_arg_scope`` passes no ``scale``
    to ``slim.batch_norm``, whose default is ``scale=False``, so the reference's batch norms learn
    only the offset (beta).
  * Optimiser: ``optimizer`` 'RMS' -> ``tf.train.RMSPropOptimizer(lr, RMSPROP_DECAY = 0.9,
    momentum=RMSPROP_MOMENTUM = 0.9, epsilon=RMSPROP_EPSILON = 1.0)``; no gradient clipping
    (``optimizer.minimize(loss)``) -> ``grad_clip_norm`` 0; weight decay ``WEIGHT_DECAY = 0.00004``
    as ``WEIGHT_DECAY * sum(tf.nn.l2_loss(v))`` over 'weights' not in 'BatchNorm' -> 4e-5 on the
    kernels (optimizers.py's TF-slim L2).
  * Learning rate: ``learning_rate`` 0.165 with ``initial_learning_rate = FLAGS.learning_rate *
    FLAGS.train_batch_size / 256`` -> ``learning_rate`` 0.165 at ``base_batch_size`` 256, i.e.
    0.66 at 1024; ``tf.train.exponential_decay(..., decay_steps=int(learning_rate_decay_epochs *
    batches_per_epoch), decay_rate=learning_rate_decay, staircase=True)`` with
    ``learning_rate_decay`` 0.94, ``learning_rate_decay_epochs`` 3 -> ``staircase_exponential``,
    0.94 every 3 epochs (3753 steps at 1024, as there); ``final_learning_rate = 0.0001 *
    initial_learning_rate`` and ``tf.maximum(learning_rate, final_learning_rate)`` ->
    ``min_learning_rate_fraction`` 1e-4 (it never binds within 170 epochs: 0.94^56 = 0.031);
    ``use_learning_rate_warmup`` False by default (its ``cold_epochs`` 2 / ``warmup_epochs`` 7 are
    off) -> no warm-up.
  * Loss: ``tf.losses.softmax_cross_entropy(..., label_smoothing=0.1)`` on the logits (weight 1.0)
    and on ``AuxLogits`` (``weights=0.4``) -> ``label_smoothing`` 0.1, ``aux_weight`` 0.4.
  * Averaging: ``moving_average`` True, ``tf.train.ExponentialMovingAverage(decay=
    MOVING_AVERAGE_DECAY = 0.995, num_updates=global_step)``, evaluated with the averages
    (``LoadEMAHook``) -> ``ema_decay`` 0.995 (the step uses TF's ``min(decay, (1+n)/(10+n))``).
    It averages ``tf.trainable_variables() + tf.moving_average_variables()``. The second list is
    TF's ``MOVING_AVERAGE_VARIABLES`` collection, which ``ExponentialMovingAverage.apply`` itself
    fills; TF-slim's batch norm puts its moving mean and variance in ``moving_vars``, not there.
    So the code does not show that the batch-norm statistics are averaged (read this way they are
    not), and no run says either way. Here the averaged parameters are evaluated with the running
    statistics.
  * Data: ``width``/``height`` 299; ``preprocessing`` 'inception': ``distorted_bounding_box_crop``
    with ``area_range=(0.05, 1.0)``, ``aspect_ratio_range=(3/4, 4/3)``, ``min_object_covered=0.1``
    (the whole image as the box, ``use_annotated_bbox`` False: crops under 10 % of the image are
    rejected) -> ``crop_area_range`` (0.1, 1.0), which accepts the same crops here (this pipeline
    passes the lower bound as ``min_object_covered`` and samples with the same TF op); bilinear
    resize; random flip; [-1, 1] inputs. Evaluation: ``central_crop(central_fraction=0.875)`` then
    bilinear resize -> ``eval_crop_fraction`` 0.875. Differs: ``distort_color_fast`` (brightness
    +-32/255, Cb/Cr +-0.1) there, no colour augmentation here; ``max_attempts`` 100 there, 10 here,
    and when no crop is accepted the whole image there, its centred square here
    (inception_jax/data/preprocessing.py); the evaluation crop there is 87.5 % of each side (then
    stretched to 299x299), here 87.5 % of the shorter side, square; ``eval_batch_size`` 1024 with
    ``eval_steps = 50000 // 1024`` scores 49,152 images there, every one of the 50,000 here.
  * Length and cadence: ``train_steps`` 213000 -> ``num_epochs`` = 213000 / 1251: this config
    trains 213,000 steps at batch 1024 (170.26 epochs at any batch), as the reference's
    ``--mode=train`` does. The reference's default ``--mode=train_and_eval`` runs
    ``train_steps // train_steps_per_eval`` = 106 cycles of 2000 steps and so stops at 212,000
    (169.45 epochs); the cited guide does not say which mode gave 78.1 %.
    ``train_steps_per_eval`` 2000 -> ``eval_every_steps`` 2000. Checkpoints there every
    ``save_checkpoints_secs`` 1000 s; here every epoch (1251 steps), a project choice.
    ``precision`` 'float32' -> ``half_precision`` False.
  * Batch norm batch: synchronous data parallel (``CrossShardOptimizer``), batch norm over each
    core's images (``num_shards`` 8: 128 per core) -> ``parallel`` pmap, ``sync_batch_norm``
    False: each device normalises over its own share of the global batch. That is the reference's
    128 only on 8 devices: on 32 devices it is 32 images, on 4 it is 256 (``python -m
    inception_jax.tools.plan`` prints the per-device batch).

Other batch sizes. Scaling rule, from the same file: the rate is linear in the global batch
(``FLAGS.learning_rate * FLAGS.train_batch_size / 256``), the schedule and length are in epochs
(``batches_per_epoch = _NUM_TRAIN_IMAGES / FLAGS.train_batch_size``). The cited run's batch is the
reference's default ``train_batch_size`` 1024 (the Cloud TPU guide names v2-8, v2-128 and v2-512
slices and no batch size) -> ``recipe_verified_batch_size`` 1024; training above it prints a
warning.

``configs/inception_v3_imagenet.py:paper`` is the paper's own setting, Szegedy et al., "Rethinking
the Inception Architecture for Computer Vision", CVPR 2016, §8 "Training Methodology": "RMSProp
with decay of 0.9 and eps = 1.0", "learning rate of 0.045, decayed every two epochs using an
exponential rate of 0.94", "gradient clipping with threshold 2.0", "a model evaluated using a
running average of the parameters computed over time", batch 32 on each of 50 replicas trained
asynchronously ("with batch size 32 for 100 epochs"); §7 label smoothing 0.1; 299 px; §4
BN-auxiliary. Not in the paper: RMSProp momentum 0.9, aux weight 0.4, weight decay 4e-5 and centre
crop 0.875 (TF-slim's scripts and the reference above); moving-average decay 0.9999 (the constant
``MOVING_AVERAGE_DECAY`` of the older tensorflow/models ``inception`` code; TF-slim's
``train_image_classifier.py`` averages only when ``--moving_average_decay`` is given, default
None). It is extrapolated to batch 1024: 0.045 per 32 images scaled linearly to a peak of 1.44,
reached at the end of 5 linear warm-up epochs (Goyal et al. 2017), after which the 0.94 staircase
starts (every 2 epochs, counted from the end of the warm-up). No published run verifies it above
batch 32 (``recipe_verified_batch_size`` 32), so it runs with a warning at its default batch.
"""

from inception_jax.config import loading as config_loading

imagenet = config_loading.load_config_module('common/imagenet.py', relative_to=__file__)

# Both variants: the network, RMSProp (decay 0.9, eps 1.0: the schema's rmsprop_decay and
# rmsprop_epsilon) with a staircase decay of 0.94, the aux loss weight.
SHARED = {
    'model': 'inception_v3',
    'model_overrides.bn_auxiliary': True,
    'image_size': 299,
    'optimizer': 'rmsprop',
    'lr_schedule': 'staircase_exponential',
    'decay_rate': 0.94,
    'aux_weight': 0.4,
}

# The Cloud TPU run (tensorflow/tpu models/experimental/inception/inception_v3.py flags).
REFERENCE = {
    'recipe_source': ('Cloud TPU Inception v3, tensorflow/tpu models/experimental/inception/'
                      'inception_v3.py defaults: >78.1% top-1 in ~170 epochs at batch 1024'),
    'recipe_verified_batch_size': 1024,
    'model_overrides.dropout_rate': 0.2,        # TF-slim inception_v3 dropout_keep_prob=0.8
    'model_overrides.bn_momentum': 0.996,       # BATCH_NORM_DECAY
    'crop_area_range': (0.1, 1.0),              # area_range (0.05, 1) + min_object_covered 0.1
    'eval_batch_size': 1024,                    # eval_batch_size
    'num_epochs': 213_000 / 1251,               # train_steps 213000 at 1251 steps per epoch
    'learning_rate': 0.165,                     # learning_rate, per 256 images (base_batch_size)
    'decay_epochs': 3.0,                        # learning_rate_decay_epochs
    'warmup_epochs': 0.0,                       # use_learning_rate_warmup False
    'min_learning_rate_fraction': 1e-4,         # final_learning_rate = 0.0001 * initial
    'ema_decay': 0.995,                         # MOVING_AVERAGE_DECAY
    'eval_every_steps': 2000,                   # train_steps_per_eval
}

# The paper's §8 setting, extrapolated to batch 1024 (unverified there).
PAPER = {
    'recipe_source': ('Szegedy et al. 2016, Rethinking the Inception Architecture, section 8: '
                      '50 asynchronous replicas of batch 32'),
    'recipe_verified_batch_size': 32,
    'num_epochs': 100.0,
    'learning_rate': 0.045,
    'base_batch_size': 32,
    'decay_epochs': 2.0,
    'grad_clip_norm': 2.0,
    'ema_decay': 0.9999,
}


def get_config(arg: str | None = None):
  """Inception v3 / ImageNet: ``arg`` '' (the Cloud TPU reference run) or 'paper'."""
  return imagenet.recipe(arg, {'reference': REFERENCE, 'paper': PAPER}, shared=SHARED,
                         where=__file__)
