r"""Inception v3 on ImageNet (ILSVRC 2012).

Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016, §8
"Training Methodology": "RMSProp with decay of 0.9 and eps = 1.0", "learning rate of 0.045,
decayed every two epochs using an exponential rate of 0.94", "gradient clipping with threshold
2.0", "a model evaluated using a running average of the parameters computed over time"; §7 label
smoothing with eps 0.1; 299x299 inputs (Table 1); §4 "BN-auxiliary" (batch norm in the auxiliary
classifier's fully connected layer) -> ``bn_auxiliary=True``.

Not stated in the paper, from the TF-slim / Cloud TPU Inception v3 training scripts
(tensorflow/tpu models/experimental/inception/inception_v3.py): RMSProp momentum 0.9, aux loss
weight 0.4 (the paper states none), moving-average decay 0.9999, weight decay 4e-5, base batch 32
for the 0.045 rate (the paper's 50 replicas used batch 32 each), centre crop 0.875 at evaluation.

Learning-rate scaling rule: ``learning_rate`` is for ``base_batch_size`` = 32 examples; the rate
used is ``0.045 * global_batch_size / 32`` (linear scaling, Goyal et al. 2017), with 5 warm-up
epochs. At the default global batch of 1024 that is 1.44.

Length: 100 epochs (the paper's best model trained ~100 epochs in 50 replicas; Fig. 6 of the
paper shows progress to ~100 epochs).
"""

from inception_jax.training import schema


def get_config(arg: str | None = None):
  """Inception v3 / ImageNet config (``arg`` unused)."""
  del arg
  c = schema.base_config()
  c.model = 'inception_v3'
  c.model_overrides.bn_auxiliary = True
  c.dataset = 'imagenet2012'
  c.train_split = 'train'
  c.eval_split = 'validation'
  c.image_size = 299
  c.augment = 'inception_crop'
  c.crop_area_range = (0.08, 1.0)
  c.aspect_ratio_range = (3 / 4, 4 / 3)
  c.random_flip = True
  c.eval_crop_fraction = 0.875
  c.normalization = 'inception'
  c.shuffle_buffer = 16_384
  c.seed = 0

  c.global_batch_size = 1024
  c.eval_batch_size = 1000
  c.num_epochs = 100.0
  c.num_train_steps = 0

  c.optimizer = 'rmsprop'
  c.rmsprop_decay = 0.9
  c.rmsprop_epsilon = 1.0
  c.momentum = 0.9
  c.learning_rate = 0.045
  c.base_batch_size = 32
  c.lr_schedule = 'staircase_exponential'
  c.decay_rate = 0.94
  c.decay_epochs = 2.0
  c.warmup_epochs = 5.0
  c.weight_decay = 4e-5
  c.grad_clip_norm = 2.0
  c.label_smoothing = 0.1
  c.aux_weight = 0.4
  c.ema_decay = 0.9999

  c.half_precision = False
  c.parallel = 'pmap'
  c.log_every_steps = 100
  c.eval_every_steps = 5004
  c.checkpoint_every_steps = 1251
  c.keep_checkpoints = 3
  return c
