"""Our train and eval steps, initialised, compiled and timed: the figures the benchmark is for.

The steps are the training system's own (``training.step``), with the state donated as the loop
donates it, so that the figure is what training gets, not what a simplified step would get.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import TYPE_CHECKING, Any, Sequence

from inception_jax.tools.bench.timing import summarize_times, time_calls
from inception_jax.tools.bench.workload import random_batch, train_config

if TYPE_CHECKING:
  import flax.linen as nn


def bench_ours(args: argparse.Namespace, model: nn.Module, aux_weight: float,
               peak_flops: float) -> dict[str, Any]:
  """Init, compile and time our train and eval steps; returns the JSON sections."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from inception_jax.models import summary  # pylint: disable=g-import-not-at-top
  from inception_jax.models import init_variables  # pylint: disable=g-import-not-at-top
  from inception_jax.training import optimizers  # pylint: disable=g-import-not-at-top
  from inception_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
  from inception_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top

  config = train_config(args)
  lr_fn = optimizers.create_learning_rate_fn(config, steps_per_epoch=1000, total_steps=100_000)
  tx = optimizers.create_optimizer(config, lr_fn)

  # Initialisation (wall time to a ready state, compilation included).
  t = time.perf_counter()
  if args.init == 'fast':
    variables = init_variables(model, jax.random.PRNGKey(0), args.size)
    params = variables['params']
    state = state_lib.TrainState(
        step=jnp.zeros((), jnp.int32), params=params,
        batch_stats=variables.get('batch_stats', {}), opt_state=jax.jit(tx.init)(params),
        ema_params={}, rng=jax.random.PRNGKey(1), nonfinite_step=jnp.full((), -1, jnp.int32),
        nonfinite_what=jnp.zeros((), jnp.int32))
  else:
    state = state_lib.create_train_state(model, tx, image_size=args.size, seed=0, ema=False)
  jax.block_until_ready(state)
  init_seconds = time.perf_counter() - t

  macs_eval = summary.count_macs(model, args.size, include_aux=False)
  macs_train = (summary.count_macs(model, args.size, include_aux=True)
                if getattr(model, 'aux_logits', False) else macs_eval)
  flops = {'train': 6 * macs_train, 'eval': 2 * macs_eval}

  host = random_batch(args.batch, args.size, args.num_classes, half=args.half)
  batch = jax.device_put(host)
  rng = jnp.array(state.rng, copy=True)  # its own buffer: the state (and its rng) is donated
  result: dict[str, Any] = {
      'init': {'seconds': init_seconds, 'method': args.init},
      'macs_per_image': {'inference': macs_eval, 'training_with_aux': macs_train},
      'flops_per_image': flops,
  }

  # Training step: the training system's own step, state donated as the loop does.
  train_step = step_lib.make_train_step(model, tx, lr_fn, aux_weight=aux_weight, axis_name=None)
  t = time.perf_counter()
  compiled = jax.jit(train_step, donate_argnums=(0,)).lower(state, batch, rng).compile()
  train_compile = time.perf_counter() - t
  holder = {'state': state}

  def one_train_step():
    holder['state'], metrics = compiled(holder['state'], batch, rng)
    jax.block_until_ready((holder['state'], metrics))
    return metrics

  times = time_calls(one_train_step, args.steps, args.warmup)
  loss = float(one_train_step()['loss'])
  result['train'] = _step_section(train_compile, times, args.batch, flops['train'], peak_flops)
  # The same steps dispatched back to back and waited for once: the device's throughput without
  # the per-step round trip, which is what a loop that never waits can reach (--loop's reference).
  t = time.perf_counter()
  for _ in range(args.steps):
    holder['state'], metrics = compiled(holder['state'], batch, rng)
  jax.block_until_ready((holder['state'], metrics))
  result['train']['images_per_second_pipelined'] = (
      args.steps * args.batch / (time.perf_counter() - t))
  result['train']['final_loss'] = loss
  result['train']['metrics_finite'] = math.isfinite(loss)

  if not args.no_eval:
    eval_step = step_lib.make_eval_step(model, axis_name=None)
    eval_batch = dict(batch, mask=jnp.ones((args.batch,), jnp.bool_))
    t = time.perf_counter()
    compiled_eval = jax.jit(eval_step).lower(holder['state'], eval_batch).compile()
    eval_compile = time.perf_counter() - t
    times = time_calls(lambda: jax.block_until_ready(compiled_eval(holder['state'], eval_batch)),
                       args.steps, args.warmup)
    result['eval'] = _step_section(eval_compile, times, args.batch, flops['eval'], peak_flops)
  else:
    result['eval'] = None
  result['_state'] = holder['state']
  return result


def _step_section(compile_seconds: float, times: Sequence[float], batch: int,
                  flops_per_image: float, peak_flops: float) -> dict[str, Any]:
  """The JSON section of one step: its timing, and the FLOP/s and share of the peak it reaches."""
  section = {'compile_seconds': compile_seconds, **summarize_times(times, batch)}
  achieved = flops_per_image * section['images_per_second']['median']
  section['flops_per_second'] = achieved
  section['percent_of_peak'] = 100.0 * achieved / peak_flops if peak_flops else None
  return section
