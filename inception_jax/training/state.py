"""TrainState: everything a run needs to continue, as one pytree.

The data position is not stored separately: the input pipeline is a pure function of
``(seed, step)``, so ``step`` is the position in the data too.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

PyTree = Any

# Codes stored in ``TrainState.nonfinite_what`` (a bit set) when a step is skipped.
NONFINITE_LOSS = 1
NONFINITE_GRADS = 2


@flax.struct.dataclass
class TrainState:
  """Parameters, BatchNorm statistics, optimiser state, EMA and the step, all arrays.

  ``step`` counts applied updates; the update that consumes batch ``s`` (0-based) turns ``step``
  from ``s`` into ``s + 1``. ``rng`` is the run's base key: the step derives the dropout key from it,
  the step number and the device index, so resuming needs nothing else. ``ema_params`` is an empty
  dict when Polyak averaging is off. ``nonfinite_step`` is -1 until a step meets a non-finite loss or
  gradient; it then holds that step's number (``state.step + 1`` at the time) and
  ``nonfinite_what`` says which (``NONFINITE_LOSS | NONFINITE_GRADS``); both are sticky and every
  later step leaves the state untouched, so the state always holds the last good values.
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: optax.OptState
  ema_params: PyTree
  rng: jax.Array
  nonfinite_step: jax.Array
  nonfinite_what: jax.Array

  @property
  def eval_params(self) -> PyTree:
    """EMA (Polyak-averaged) params when kept, else the raw params."""
    return self.ema_params if self.ema_params else self.params


def create_train_state(model: Any, tx: optax.GradientTransformation, *, image_size: int,
                       seed: int, ema: bool) -> TrainState:
  """A fresh TrainState as host numpy arrays, initialised fast (no compiled ``model.init``).

  The parameters come from ``models.init_variables`` (the initialisers' distributions, one fused
  random draw: about a second where ``jax.jit(model.init)`` compiled for 15-40 s on the 2-core
  CPU); the optimiser state from ``jax.jit(tx.init)``. The init key and the run's base key
  (dropout) are split from ``seed`` exactly as in :func:`make_init_fn`, whose ``jax.eval_shape``
  gives this state's structure.
  """
  from inception_jax.models import init_variables  # pylint: disable=g-import-not-at-top
  init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
  variables = init_variables(model, init_key, image_size, batch_size=2, train=True)
  params = variables['params']
  batch_stats = variables.get('batch_stats', {})
  opt_state = jax.jit(tx.init)(params)
  state = TrainState(
      step=np.zeros((), np.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=opt_state,
      ema_params=params if ema else {},
      rng=run_key,
      nonfinite_step=np.full((), -1, np.int32),
      nonfinite_what=np.zeros((), np.int32))
  return jax.tree.map(np.array, jax.device_get(state))


def make_init_fn(model: Any, tx: optax.GradientTransformation, *, image_size: int,
                 ema: bool) -> Callable[[jax.Array], TrainState]:
  """``key -> TrainState`` with ``model.init``: use with ``jax.eval_shape`` for the abstract state
  (the structure :func:`create_train_state` fills and checkpoints restore into)."""

  def init(key: jax.Array) -> TrainState:
    init_key, run_key = jax.random.split(key)
    images = jnp.zeros((2, image_size, image_size, 3), jnp.float32)
    # train=True so the auxiliary heads (built only in training) get their parameters too; Flax
    # leaves BatchNorm statistics at their initial values while initialising.
    variables = model.init({'params': init_key, 'dropout': init_key}, images, train=True)
    params = variables['params']
    batch_stats = variables.get('batch_stats', {})
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=batch_stats,
        opt_state=tx.init(params),
        ema_params=jax.tree.map(jnp.copy, params) if ema else {},
        rng=run_key,
        nonfinite_step=jnp.full((), -1, jnp.int32),
        nonfinite_what=jnp.zeros((), jnp.int32))

  return init


def describe_nonfinite(what: int) -> str:
  """Names the metric(s) behind a ``nonfinite_what`` code, e.g. ``'loss and gradients'``."""
  names = []
  if what & NONFINITE_LOSS:
    names.append('loss')
  if what & NONFINITE_GRADS:
    names.append('gradients')
  return ' and '.join(names) or 'value'
