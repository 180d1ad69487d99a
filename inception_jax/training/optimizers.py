"""Optax optimisers and learning-rate schedules built from the config.

Learning-rate scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §2.1): the config's
``learning_rate`` is the rate for ``base_batch_size`` examples per step and the rate used is
``learning_rate * global_batch_size / base_batch_size``. Schedules are expressed in epochs and turned
into steps with ``steps_per_epoch = num_train_examples // global_batch_size``.
Warm-up (``warmup_epochs`` > 0): the rate rises linearly to the peak, reached at the last warm-up
step, and the decay starts after it: the decay schedule runs shifted by the warm-up length, so its
first staircase step falls ``decay_epochs`` after the warm-up ends and a cosine spans the steps left
after it (Goyal et al. 2017, §2.2: warm up to the target rate, then the schedule).
``min_learning_rate_fraction`` puts a floor under the whole schedule, warm-up included, as the Cloud
TPU Inception v3 reference does (tensorflow/tpu models/experimental/inception/inception_v3.py:
``final_learning_rate = 0.0001 * initial_learning_rate``, then ``learning_rate =
tf.maximum(learning_rate, final_learning_rate)``).

Weight decay follows TF-slim (the Inception papers' code): an L2 penalty ``wd/2 * ||w||^2`` on the
kernels (not biases or BatchNorm parameters) added to the loss, i.e. ``wd * w`` added to the gradient
before clipping and before the optimiser, for ``sgd`` and ``rmsprop``; ``adamw`` decays decoupled
(Loshchilov & Hutter 2019).

``freeze_backbone`` (fine-tuning a linear probe on converted weights): only the classifier ``fc``
and the auxiliary classifiers (top-level modules ``aux1``/``aux2``/``AuxLogits``, see
:func:`head_labels`) are updated; every other parameter's update is exactly zero
(``optax.multi_transform`` with ``optax.set_to_zero``, which also keeps no optimiser state for
them). BatchNorm running statistics are not parameters: see ``configs/finetune_folder.py``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from inception_jax.errors import UserError
from inception_jax.config.schema import OPTIMIZERS, SCHEDULES


def scaled_learning_rate(config: Any) -> float:
  """``learning_rate * global_batch_size / base_batch_size`` (linear scaling rule)."""
  return float(config.learning_rate) * config.global_batch_size / config.base_batch_size


def steps_per_epoch(num_train_examples: int, global_batch_size: int) -> int:
  """Whole batches per pass over the training split (at least 1)."""
  return max(1, num_train_examples // global_batch_size)


def num_train_steps(config: Any, num_train_examples: int) -> int:
  """``config.num_train_steps`` when > 0, else ``ceil(num_epochs * steps_per_epoch)``."""
  if config.get('num_train_steps', 0) and config.num_train_steps > 0:
    return int(config.num_train_steps)
  return int(math.ceil(config.num_epochs *
                       steps_per_epoch(num_train_examples, config.global_batch_size)))


def create_learning_rate_fn(config: Any, steps_per_epoch: int,  # pylint: disable=redefined-outer-name
                            total_steps: int) -> optax.Schedule:
  """Step -> learning rate: linear warm-up to the peak, then the configured decay counted from the
  end of the warm-up, never below ``min_learning_rate_fraction`` of the peak."""
  base = scaled_learning_rate(config)
  warmup = int(round(config.get('warmup_epochs', 0.0) * steps_per_epoch))
  kind = config.lr_schedule
  if kind not in SCHEDULES:
    raise UserError(f"unknown lr_schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
  decay_steps = max(1, int(round(config.get('decay_epochs', 1.0) * steps_per_epoch)))
  decay_rate = float(config.get('decay_rate', 1.0))
  floor_fraction = config.get('min_learning_rate_fraction', 0.0) or 0.0
  if (isinstance(floor_fraction, bool) or not isinstance(floor_fraction, (int, float))
      or not 0.0 <= floor_fraction < 1.0):
    raise UserError(f'config.min_learning_rate_fraction must be in [0, 1), got {floor_fraction!r}')
  floor = base * float(floor_fraction)
  decay_length = max(1, total_steps - warmup)

  def decay(step):  # ``step`` counts from the end of the warm-up
    step = jnp.asarray(step, jnp.float32)
    if kind == 'staircase_exponential':
      # GoogLeNet §6: "decreasing the learning rate by 4% every 8 epochs".
      return base * decay_rate ** jnp.floor(step / decay_steps)
    if kind == 'cosine':
      progress = jnp.clip(step / decay_length, 0.0, 1.0)
      return base * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return jnp.full(jnp.shape(step), base, jnp.float32)

  def warm(step):  # steps 0 .. warmup - 1: base / warmup, ..., base
    step = jnp.asarray(step, jnp.float32)
    return base * jnp.minimum(1.0, (step + 1.0) / max(1, warmup))

  decayed = optax.join_schedules([warm, decay], [warmup]) if warmup > 0 else decay

  def schedule(step):
    lr = jnp.asarray(decayed(jnp.asarray(step, jnp.float32)), jnp.float32)
    if floor > 0:
      lr = jnp.maximum(lr, floor)
    return lr

  return schedule


def _kernel_mask(params: Any) -> Any:
  """True for kernels (rank >= 2), False for biases and BatchNorm scale/offset."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


HEAD = 'head'
BACKBONE = 'backbone'


def _is_head(module_name: str) -> bool:
  """The classifier ``fc`` and the auxiliary classifiers (``aux1``, ``aux2``, ``AuxLogits``),
  the modules whose shapes follow the class count in every registered network."""
  return module_name == 'fc' or module_name.lower().startswith('aux')


def head_labels(params: Any) -> Any:
  """``params``' tree with each leaf labelled :data:`HEAD` or :data:`BACKBONE` by its top-level
  module (:func:`_is_head`); a UserError when no module is a head."""
  if not any(_is_head(name) for name in params):
    raise UserError('freeze_backbone=True but the model has no classifier module named fc or '
                    f'aux*: its top-level modules are {", ".join(sorted(params))}')
  return {name: jax.tree.map(lambda _, n=name: HEAD if _is_head(n) else BACKBONE, sub)
          for name, sub in params.items()}


def create_optimizer(config: Any, learning_rate_fn: optax.Schedule) -> optax.GradientTransformation:
  """The configured optimiser with TF-slim-style L2 weight decay and global-norm clipping; with
  ``freeze_backbone`` it updates only the classifiers (:func:`head_labels`)."""
  tx = _create_optimizer(config, learning_rate_fn)
  if config.get('freeze_backbone', False):
    # Gradient clipping and weight decay then see only the trained heads' gradients too.
    return optax.multi_transform({HEAD: tx, BACKBONE: optax.set_to_zero()}, head_labels)
  return tx


def _create_optimizer(config: Any, learning_rate_fn: optax.Schedule
                      ) -> optax.GradientTransformation:
  name = config.optimizer
  wd = float(config.get('weight_decay', 0.0))
  clip = float(config.get('grad_clip_norm', 0.0))
  chain = []
  if name in ('sgd', 'rmsprop') and wd > 0:
    chain.append(optax.add_decayed_weights(wd, mask=_kernel_mask))
  if clip > 0:
    chain.append(optax.clip_by_global_norm(clip))
  if name == 'sgd':
    momentum = float(config.get('momentum', 0.0))
    chain.append(optax.sgd(learning_rate_fn, momentum=momentum or None,
                           nesterov=bool(config.get('nesterov', False))))
  elif name == 'rmsprop':
    # TF RMSPropOptimizer semantics (what the Inception v3 recipe was tuned with): epsilon inside
    # the square root and the mean-square accumulator starting at 1, not 0.
    chain.append(optax.rmsprop(learning_rate_fn, decay=float(config.rmsprop_decay),
                               eps=float(config.rmsprop_epsilon), initial_scale=1.0,
                               eps_in_sqrt=True, momentum=float(config.get('momentum', 0.0)) or None))
  elif name == 'adamw':
    chain.append(optax.adamw(learning_rate_fn, weight_decay=wd, mask=_kernel_mask))
  else:
    raise UserError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
  return optax.chain(*chain)
