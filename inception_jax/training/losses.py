"""Losses and accuracy: cross-entropy with label smoothing, the weighted auxiliary loss, top-k."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, *,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy against (optionally smoothed) one-hot labels.

  Label smoothing as Inception v3 §7 ("LSR"): the target is ``(1 - eps) * onehot + eps / K``.
  Computed in float32 whatever the compute dtype.
  """
  num_classes = logits.shape[-1]
  targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def inception_loss(logits: jax.Array, aux_logits: Mapping[str, jax.Array], labels: jax.Array, *,
                   aux_weight: float, label_smoothing: float = 0.0,
                   ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
  """Mean over the batch of ``CE(main) + aux_weight * sum_heads CE(aux)``.

  GoogLeNet §5: "During training, their loss gets added to the total loss of the network with a
  discount weight (the losses of the auxiliary classifiers were weighted by 0.3)". Returns
  ``(loss, (main_loss, aux_loss))`` where ``aux_loss`` is the unweighted sum over heads.
  """
  main = cross_entropy(logits, labels, label_smoothing=label_smoothing).mean()
  aux = jnp.zeros((), jnp.float32)
  for name in sorted(aux_logits):
    aux = aux + cross_entropy(aux_logits[name], labels, label_smoothing=label_smoothing).mean()
  return main + aux_weight * aux, (main, aux)


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """Per-example 1.0 when the label is among the ``k`` largest logits (k capped at #classes)."""
  k = min(k, logits.shape[-1])
  label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)
  # Rank of the label = number of logits strictly greater (exact ties count in the label's favour);
  # a non-finite label logit never counts as correct.
  rank = jnp.sum(logits > label_logit, axis=-1)
  return ((rank < k) & jnp.isfinite(label_logit[:, 0])).astype(jnp.float32)
