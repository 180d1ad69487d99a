"""Fast model initialisation: one abstract trace and one fused random draw.

``model.init`` under ``jax.jit`` compiles one random-number program per parameter (hundreds of
small fusions): 25-60 s of compilation for GoogLeNet / Inception v3 on a 2-core CPU with the
default threefry keys, ~9 s with ``rbg`` keys. :func:`init_variables` gets the same variables in
about a second:

1. ``jax.eval_shape`` of ``model.init`` gives every variable's shape and dtype (no FLOP), while a
   method interceptor records the module that owns each one, and so its initialiser.
2. Every parameter whose initialiser is a ``variance_scaling`` one (He, LeCun, Glorot in all their
   normal / truncated-normal / uniform forms; both models' kernels) is a scaled slice of one
   standard draw per distribution: one jitted random program for the whole model. ``zeros`` /
   ``ones`` parameters and BatchNorm statistics are filled on the host.
3. Anything else (another initialiser, a module with its own non-parameter state) is initialised
   by calling its own initialiser under the same jit, so the function works for any Flax model;
   it is only slower to compile.

The values follow the same distributions as ``model.init`` but are *different draws* (one stream
for the whole model instead of one key per parameter): a run initialised this way is as valid as,
and reproducible like, one initialised by ``model.init``, but not bit-identical to it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

# Standard deviation of a standard normal truncated to (-2, 2) (as jax.nn.initializers uses).
_TRUNCATED_NORMAL_STD = .87962566103423978
_DISTRIBUTIONS = ('truncated_normal', 'normal', 'uniform')


def _closure(fn: Callable) -> dict[str, Any] | None:
  code, cells = getattr(fn, '__code__', None), getattr(fn, '__closure__', None)
  if code is None or cells is None:
    return None
  try:
    return dict(zip(code.co_freevars, (c.cell_contents for c in cells)))
  except ValueError:  # an empty cell
    return None


def _axes_size(shape: tuple[int, ...], axes: Any) -> int:
  axes = (axes,) if isinstance(axes, int) else tuple(axes)
  return math.prod(shape[a] for a in axes)


def _variance_scaling(fn: Callable, shape: tuple[int, ...], dtype: Any
                      ) -> tuple[str, float] | None:
  """(distribution, multiplier of a standard draw) for a jax ``variance_scaling`` initialiser."""
  if getattr(fn, '__qualname__', '') != 'variance_scaling.<locals>.init':
    return None
  if not jnp.issubdtype(dtype, jnp.floating) or len(shape) < 2:
    return None
  c = _closure(fn)
  if c is None or c.get('distribution') not in _DISTRIBUTIONS:
    return None
  in_size = _axes_size(shape, c['in_axis'])
  out_size = _axes_size(shape, c['out_axis'])
  batch_size = _axes_size(shape, c['batch_axis'])
  receptive = math.prod(shape) / in_size / out_size / batch_size
  fan_in, fan_out = in_size * receptive, out_size * receptive
  denominator = {'fan_in': fan_in, 'fan_out': fan_out, 'fan_avg': (fan_in + fan_out) / 2,
                 'fan_geo_avg': (fan_in * fan_out) ** 0.5}.get(c['mode'])
  if denominator is None:
    return None
  variance = c['scale'] / denominator
  if c['distribution'] == 'truncated_normal':
    return 'truncated_normal', math.sqrt(variance) / _TRUNCATED_NORMAL_STD
  if c['distribution'] == 'normal':
    return 'normal', math.sqrt(variance)
  return 'uniform', math.sqrt(3 * variance)


def _constant(fn: Callable) -> float | None:
  if fn is jax.nn.initializers.zeros:
    return 0.0
  if fn is jax.nn.initializers.ones:
    return 1.0
  return None


# Non-parameter variables of Flax modules whose initial values are known constants.
_KNOWN_STATE = {(nn.BatchNorm, 'batch_stats', 'mean'): 0.0,
                (nn.BatchNorm, 'batch_stats', 'var'): 1.0}


@functools.partial(jax.jit, static_argnums=1)
def _standard_draws(key: jax.Array, sizes: tuple[tuple[str, int], ...]) -> dict[str, jax.Array]:
  """One standard draw per distribution (a module-level jit: compiled once per size set)."""
  sizes = dict(sizes)
  keys = jax.random.split(key, len(_DISTRIBUTIONS))
  out = {}
  for k, dist in zip(keys, _DISTRIBUTIONS):
    n = sizes.get(dist, 0)
    if not n:
      continue
    if dist == 'truncated_normal':
      out[dist] = jax.random.truncated_normal(k, -2.0, 2.0, (n,), jnp.float32)
    elif dist == 'normal':
      out[dist] = jax.random.normal(k, (n,), jnp.float32)
    else:
      out[dist] = jax.random.uniform(k, (n,), jnp.float32, -1.0, 1.0)
  return out


def init_variables(model: nn.Module, rng: jax.Array, image_size: int | tuple[int, ...], *,
                   batch_size: int = 2, train: bool = True, channels: int = 3,
                   **call_kwargs: Any) -> dict[str, PyTree]:
  """``model.init``'s variables (same tree, shapes, dtypes and distributions), fast.

  Args:
    model: any Flax module taking an image batch ``[batch, H, W, channels]``.
    rng: a JAX PRNG key (legacy uint32 or typed); the values are a pure function of it.
    image_size: the square side (or ``(H, W)``) of the dummy batch used to trace the model.
    batch_size: of the dummy batch (2, so BatchNorm statistics are defined while tracing).
    train: trace in training mode (builds auxiliary heads that exist only in training).
    channels: of the dummy batch.
    **call_kwargs: further arguments of ``model.__call__``.

  Returns:
    ``{'params': ..., 'batch_stats': ...}`` (whatever collections ``model.init`` returns) as
    device arrays; see the module docstring for how the values relate to ``model.init``'s.
  """
  h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
  images = jax.ShapeDtypeStruct((batch_size, h, w, channels), jnp.float32)
  owners: dict[tuple[str, ...], nn.Module] = {}

  def record(next_fun, args, kwargs, context):
    owners.setdefault(tuple(context.module.path), context.module)
    return next_fun(*args, **kwargs)

  def abstract_init(x):
    with nn.intercept_methods(record):
      return model.init({'params': jax.random.PRNGKey(0), 'dropout': jax.random.PRNGKey(0)}, x,
                        train=train, **call_kwargs)

  shapes = flax.core.unfreeze(jax.eval_shape(abstract_init, images))
  flat = flax.traverse_util.flatten_dict(shapes)

  plan: dict[tuple[str, ...], tuple] = {}
  sizes: dict[str, int] = {}
  for path, leaf in flat.items():
    collection, module_path, name = path[0], path[1:-1], path[-1]
    module = owners.get(module_path)
    shape, dtype = tuple(leaf.shape), leaf.dtype
    if collection == 'params':
      fn = getattr(module, f'{name}_init', None) if module is not None else None
      const = _constant(fn) if fn is not None else None
      scaled = _variance_scaling(fn, shape, dtype) if fn is not None else None
      if const is not None:
        plan[path] = ('const', const)
      elif scaled is not None:
        dist, mult = scaled
        plan[path] = ('draw', dist, sizes.get(dist, 0), mult)
        sizes[dist] = sizes.get(dist, 0) + math.prod(shape)
      elif fn is not None:
        plan[path] = ('call', fn)
      else:
        plan = None
        break
    else:
      const = next((v for (cls, col, n), v in _KNOWN_STATE.items()
                    if isinstance(module, cls) and col == collection and n == name), None)
      if const is None:
        plan = None
        break
      plan[path] = ('const', const)

  if plan is None:  # a variable we cannot attribute: the generic (slow-compiling) way
    params_key, dropout_key = jax.random.split(rng)
    return jax.jit(lambda key, x: model.init({'params': key, 'dropout': dropout_key}, x,
                                             train=train, **call_kwargs))(
        params_key, jnp.zeros(images.shape, images.dtype))

  draw_key, call_key = jax.random.split(rng)
  generated = jax.device_get(_standard_draws(draw_key, tuple(sorted(sizes.items()))))
  calls = {path: p[1] for path, p in plan.items() if p[0] == 'call'}
  if calls:
    def call_all(key):
      keys = jax.random.split(key, len(calls))
      return [fn(k, flat[path].shape, flat[path].dtype)
              for k, (path, fn) in zip(keys, calls.items())]
    called = dict(zip(calls, jax.jit(call_all)(call_key)))
  values = {}
  for path, p in plan.items():
    leaf = flat[path]
    if p[0] == 'const':
      value = np.full(leaf.shape, p[1], leaf.dtype)
    elif p[0] == 'draw':
      _, dist, offset, mult = p
      n = math.prod(leaf.shape)
      value = (generated[dist][offset:offset + n] * np.float32(mult)).astype(
          leaf.dtype).reshape(leaf.shape)
    else:
      value = called[path]
    values[path] = value
  # One device_put of the whole tree: jnp.asarray per leaf compiled a conversion per shape
  # (~1 s for Inception v3's 58 distinct shapes on the 2-core CPU).
  return jax.device_put(flax.traverse_util.unflatten_dict(values))


__all__ = ['init_variables']
