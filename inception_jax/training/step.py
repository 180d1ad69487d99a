"""The pure training and evaluation steps. They know a named batch axis, never devices.

``make_train_step`` / ``make_eval_step`` bind the static parts (model, optimiser, loss settings, axis
name) and return plain functions of arrays; ``inception_jax.training.parallel`` maps them over
devices with ``jax.pmap`` or ``jax.jit`` + ``jax.shard_map``, where ``axis_name`` is the device axis.
Batches carry uint8 pixels (or already-normalised floats); every step normalises them first, on
the device, with ``models.inputs.normalize_images`` in the model's dtype.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from jax import lax

from inception_jax.models.inputs import normalize_images
from inception_jax.training import losses
from inception_jax.training.state import NONFINITE_GRADS, NONFINITE_LOSS, TrainState

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]
TrainStep = Callable[[TrainState, Batch, jax.Array], tuple[TrainState, Metrics]]
EvalStep = Callable[[TrainState, Batch], Metrics]

AXIS_NAME = 'batch'
TRAIN_METRICS = ('loss', 'main_loss', 'aux_loss', 'top1', 'top5', 'learning_rate', 'grad_norm')
EVAL_SUMS = ('loss', 'top1', 'top5', 'count')


def dropout_key(rng: jax.Array, step: jax.Array, axis_name: str | None) -> jax.Array:
  """Dropout key for this step and this device: differs per step and per device, and is a pure
  function of (run key, step, device index), so a resumed run draws the same masks."""
  key = jax.random.fold_in(rng, step)
  if axis_name is not None:
    key = jax.random.fold_in(key, lax.axis_index(axis_name))
  return key


def model_input(model: Any, batch: Batch, normalization: str) -> jax.Array:
  """The batch's images as the model's input: uint8 pixels normalised in the model's dtype."""
  return normalize_images(batch['image'], normalization, getattr(model, 'dtype', jnp.float32))


def loss_and_grads(model: Any, params: Any, batch_stats: Any, batch: Batch, key: jax.Array, *,
                   aux_weight: float, label_smoothing: float, normalization: str = 'inception'):
  """Training-mode forward and backward on this device's examples (no averaging).

  Returns ``(loss, (main_loss, aux_loss, logits, new_batch_stats), grads)``.
  """
  images = model_input(model, batch, normalization)

  def loss_fn(params):
    variables = {'params': params}
    if batch_stats:
      variables['batch_stats'] = batch_stats
    out, updates = model.apply(variables, images, train=True, rngs={'dropout': key},
                               mutable=['batch_stats'])
    loss, (main, aux) = losses.inception_loss(out.logits, out.aux_logits, batch['label'],
                                              aux_weight=aux_weight,
                                              label_smoothing=label_smoothing)
    return loss, (main, aux, out.logits, updates.get('batch_stats', batch_stats))

  (loss, extras), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  return loss, extras, grads


def _ema_decay(decay: float, step: jax.Array) -> jax.Array:
  """TF ``ExponentialMovingAverage(decay, num_updates=step)``: ``min(decay, (1+n)/(10+n))``, the
  averaging used by the TF-slim Inception training scripts, so early averages are not dominated by
  the random initialisation."""
  n = step.astype(jnp.float32)
  return jnp.minimum(decay, (1.0 + n) / (10.0 + n))


def make_train_step(model: Any, tx: optax.GradientTransformation,
                    learning_rate_fn: Callable[[jax.Array], jax.Array], *, aux_weight: float,
                    label_smoothing: float = 0.0, ema_decay: float = 0.0,
                    normalization: str = 'inception',
                    axis_name: str | None = AXIS_NAME) -> TrainStep:
  """Returns ``train_step(state, batch, rng) -> (state, metrics)``.

  ``rng`` is the run's base key (``state.rng``); ``batch`` holds this device's ``image`` and
  ``label``. Gradients, BatchNorm statistics and metrics are averaged over ``axis_name`` with
  ``lax.pmean``, so every device ends with the same state. A step whose averaged loss or gradients
  are not finite leaves the state untouched and marks ``nonfinite_step`` (sticky; see TrainState).
  """

  def pmean(x):
    return lax.pmean(x, axis_name) if axis_name is not None else x

  def train_step(state: TrainState, batch: Batch, rng: jax.Array) -> tuple[TrainState, Metrics]:
    key = dropout_key(rng, state.step, axis_name)
    loss, (main, aux, logits, new_batch_stats), grads = loss_and_grads(
        model, state.params, state.batch_stats, batch, key, aux_weight=aux_weight,
        label_smoothing=label_smoothing, normalization=normalization)
    grads = pmean(grads)
    new_batch_stats = pmean(new_batch_stats)
    labels = batch['label']
    metrics = pmean({
        'loss': loss,
        'main_loss': main,
        'aux_loss': aux,
        'top1': losses.topk_correct(logits, labels, 1).mean(),
        'top5': losses.topk_correct(logits, labels, 5).mean(),
    })
    grad_norm = optax.tree.norm(grads)
    metrics['grad_norm'] = grad_norm
    metrics['learning_rate'] = jnp.asarray(learning_rate_fn(state.step), jnp.float32)

    updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    if ema_decay > 0:
      d = _ema_decay(ema_decay, state.step)
      new_ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, state.ema_params, new_params)
    else:
      new_ema = state.ema_params

    # NaN/Inf guard: decided on the averaged values, so all devices agree; never writes a
    # non-finite state, and once tripped every later step is a no-op until the loop stops.
    what = (jnp.where(jnp.isfinite(metrics['loss']), 0, NONFINITE_LOSS) |
            jnp.where(jnp.isfinite(grad_norm), 0, NONFINITE_GRADS)).astype(jnp.int32)
    ok = (what == 0) & (state.nonfinite_step < 0)
    first_bad = (what != 0) & (state.nonfinite_step < 0)

    def keep_if_ok(new, old):
      return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)

    new_state = state.replace(
        step=jnp.where(ok, state.step + 1, state.step),
        params=keep_if_ok(new_params, state.params),
        batch_stats=keep_if_ok(new_batch_stats, state.batch_stats),
        opt_state=keep_if_ok(new_opt_state, state.opt_state),
        ema_params=keep_if_ok(new_ema, state.ema_params),
        nonfinite_step=jnp.where(first_bad, state.step + 1, state.nonfinite_step),
        nonfinite_what=jnp.where(first_bad, what, state.nonfinite_what))
    return new_state, metrics

  return train_step


def make_batch_norm_stats_step(model: Any, *, momentum: float, normalization: str = 'inception',
                               axis_name: str | None = AXIS_NAME) -> EvalStep:
  """Returns ``stats_step(state, batch) -> batch_stats``: one batch's BatchNorm statistics.

  Precise BN (Wu & Johnson 2021, "Rethinking Batch in BatchNorm", §3; pycls and Detectron2's
  ``update_bn_stats``): the running statistics are an exponential average over past weights, so
  early in training, or with a high learning rate, they lag the weights being evaluated. Averaging
  the statistics of a few training batches computed with the weights evaluation uses
  (``state.eval_params``: EMA weights when the run keeps them) removes that lag.

  The model's BatchNorm layers update ``running = momentum * running + (1 - momentum) * batch``;
  started from zeros, the update is ``(1 - momentum) * batch``, so one training-mode pass gives
  every layer's batch mean and variance exactly. They are ``pmean``'d over ``axis_name`` (equal
  weights: every device holds as many examples). Dropout draws from the step's own key.
  """

  def stats_step(state: TrainState, batch: Batch) -> Any:
    zeros = jax.tree.map(jnp.zeros_like, state.batch_stats)
    key = dropout_key(state.rng, state.step, axis_name)
    _, updates = model.apply({'params': state.eval_params, 'batch_stats': zeros},
                             model_input(model, batch, normalization), train=True,
                             rngs={'dropout': key}, mutable=['batch_stats'])
    stats = jax.tree.map(lambda u: u / (1.0 - momentum), updates['batch_stats'])
    return lax.pmean(stats, axis_name) if axis_name is not None else stats

  return stats_step


def make_eval_step(model: Any, *, normalization: str = 'inception',
                   axis_name: str | None = AXIS_NAME) -> EvalStep:
  """Returns ``eval_step(state, batch) -> sums`` over the whole (global) batch.

  Uses the EMA parameters when the state keeps them. ``batch['mask']`` (optional) marks real
  examples; padded ones contribute nothing. The sums (``loss`` float32; ``top1``, ``top5``,
  ``count`` int32, so exact) are ``psum``'d over ``axis_name``: summed over eval batches, ``count``
  equals the split size.
  """

  def eval_step(state: TrainState, batch: Batch) -> Metrics:
    variables = {'params': state.eval_params}
    if state.batch_stats:
      variables['batch_stats'] = state.batch_stats
    out = model.apply(variables, model_input(model, batch, normalization), train=False)
    labels = batch['label']
    mask = batch.get('mask')
    if mask is None:
      mask = jnp.ones(labels.shape, jnp.bool_)
    ce = losses.cross_entropy(out.logits, labels)
    sums = {
        'loss': jnp.sum(jnp.where(mask, ce, 0.0)),
        'top1': jnp.sum(jnp.where(mask, losses.topk_correct(out.logits, labels, 1), 0)
                        ).astype(jnp.int32),
        'top5': jnp.sum(jnp.where(mask, losses.topk_correct(out.logits, labels, 5), 0)
                        ).astype(jnp.int32),
        'count': jnp.sum(mask.astype(jnp.int32)),
    }
    return lax.psum(sums, axis_name) if axis_name is not None else sums

  return eval_step
