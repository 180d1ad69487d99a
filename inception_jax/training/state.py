"""TrainState: everything a run needs to continue, as one pytree.

The data position is not stored separately: the input pipeline is a pure function of
``(seed, step)``, so ``step`` is the position in the data too.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
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
  """Initialises the model and optimiser under ``jax.jit`` (one compile, no eager op-by-op init).

  The init key and the base dropout key are both split from ``seed``; the dummy batch has two
  examples so BatchNorm statistics are well defined.
  """
  return jit_init(make_init_fn(model, tx, image_size=image_size, ema=ema))(
      jax.random.PRNGKey(seed))


def jit_init(init_fn: Callable[[jax.Array], TrainState]) -> Callable[[jax.Array], TrainState]:
  """``jax.jit(init_fn)``; on CPU compiled without backend optimisation.

  The initialiser runs once, so its compile time is all that matters: XLA:CPU's optimised build of
  the random-number kernels for every parameter took 40 s for GoogLeNet on a loaded 2-core machine,
  13 s at ``xla_backend_optimization_level=0``; the values agree to within one rounding step.
  """
  if jax.default_backend() == 'cpu':
    return jax.jit(init_fn, compiler_options={'xla_backend_optimization_level': 0})
  return jax.jit(init_fn)


def make_init_fn(model: Any, tx: optax.GradientTransformation, *, image_size: int,
                 ema: bool) -> Callable[[jax.Array], TrainState]:
  """``key -> TrainState``; use with ``jax.eval_shape`` for the abstract state (no compute)."""

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
