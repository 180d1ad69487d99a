r"""GoogLeNet on ImageNet (ILSVRC 2012) with the paper's recipe.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, §6 "Training Methodology" and §5:
  * "asynchronous stochastic gradient descent with 0.9 momentum" -> ``sgd``, momentum 0.9
    (synchronous data-parallel here);
  * "fixed learning rate schedule (decreasing the learning rate by 4% every 8 epochs)" ->
    ``staircase_exponential``, decay_rate 0.96, decay_epochs 8;
  * "Polyak averaging was used to create the final model used at inference time" -> EMA of the
    parameters, ema_decay 0.9999 (TF-slim's ``moving_average_decay``; the paper gives no value);
  * auxiliary losses "weighted by 0.3" -> aux_weight 0.3; dropout 0.4 (main) and 0.7 (aux heads)
    -> the ``googlenet`` registry defaults;
  * "sampling of various sized patches ... whose size is distributed evenly between 8% and 100% of
    the image area with aspect ratio constrained to the interval [3/4, 4/3]" -> inception_crop,
    random flips; 224x224 inputs (Table 1).
Not stated in the paper, from the TF-slim ImageNet training scripts (models/research/slim,
``train_image_classifier.py`` and ``inception_v1_arg_scope``): base learning rate 0.01 for batch 32
(slim's default ``learning_rate`` and ``batch_size``), weight decay 4e-5, centre crop 0.875 at
evaluation. Batch norm (the ``googlenet`` registry entry) follows torchvision's BN-GoogLeNet; use
``--config.model=googlenet_2014`` for the original network without it.

Learning-rate scaling rule: ``learning_rate`` is the rate for ``base_batch_size`` = 32 examples and
the rate used is ``learning_rate * global_batch_size / 32`` (Goyal et al. 2017, linear scaling, with
5 warm-up epochs, their §2.2 gradual warm-up, which large batches need). At the default global batch
of 1024 that is 0.32.

Length: 90 epochs (the torchvision / Goyal et al. reference length; the paper trained longer with
asynchronous workers and gives no epoch count).
"""

from inception_jax.training import schema


def get_config(arg: str | None = None):
  """GoogLeNet / ImageNet config (``arg`` unused)."""
  del arg
  c = schema.base_config()
  c.model = 'googlenet'
  c.dataset = 'imagenet2012'
  c.train_split = 'train'
  c.eval_split = 'validation'
  c.image_size = 224
  c.augment = 'inception_crop'
  c.crop_area_range = (0.08, 1.0)
  c.aspect_ratio_range = (3 / 4, 4 / 3)
  c.random_flip = True
  c.eval_crop_fraction = 0.875
  c.normalization = 'inception'
  c.shuffle_buffer = 16_384
  c.seed = 0

  c.global_batch_size = 1024
  c.eval_batch_size = 1000          # divides the 50,000 validation images
  c.num_epochs = 90.0
  c.num_train_steps = 0

  c.optimizer = 'sgd'
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.base_batch_size = 32
  c.lr_schedule = 'staircase_exponential'
  c.decay_rate = 0.96
  c.decay_epochs = 8.0
  c.warmup_epochs = 5.0
  c.weight_decay = 4e-5
  c.grad_clip_norm = 0.0
  c.label_smoothing = 0.0
  c.aux_weight = 0.3
  c.ema_decay = 0.9999

  c.half_precision = False
  c.parallel = 'pmap'
  c.log_every_steps = 100
  c.eval_every_steps = 5004         # about every 4 epochs at batch 1024 (1,281,167 images)
  c.checkpoint_every_steps = 1251   # about every epoch
  c.keep_checkpoints = 3
  return c
