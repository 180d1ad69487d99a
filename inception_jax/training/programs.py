"""The compiled side of a run: model, optimiser and the data-parallel steps, and a cache for them.

jax.jit caches compiled code per function object, so a run that builds new closures compiles
again. A caller that trains several runs with the same program in one process (the tests, a
notebook) passes one :class:`ProgramCache` to all of them; train.py trains once per process and
passes none.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
from typing import Any, Callable

import jax

from inception_jax import models
from inception_jax.training import optimizers, parallel
from inception_jax.training import state as state_lib
from inception_jax.training import step as step_lib

# Settings that do not change the compiled programs (so runs that differ only in them share one).
_NOT_IN_PROGRAM = ('workdir', 'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                   'keep_checkpoints', 'init_from', 'tensorboard', 'data_dir', 'shuffle_buffer',
                   'seed', 'eval_batch_size', 'precise_bn_batches')


@dataclasses.dataclass(frozen=True)
class Programs:
  """The model and the compiled functions of a run."""
  model: Any
  tx: Any
  learning_rate_fn: Callable
  init_fn: Callable          # seed -> fresh TrainState (host numpy)
  abstract_state: Any        # the TrainState's shapes and dtypes (for restoring)
  train_step: Callable       # DataParallel-mapped train_step, state donated
  eval_step: Callable        # DataParallel-mapped eval_step
  bn_stats_step: Callable    # DataParallel-mapped BatchNorm statistics of one batch (precise BN)


class ProgramCache:
  """The programs of the last ``size`` distinct programs built through it, newest kept."""

  def __init__(self, size: int = 4):
    self.size = size
    self._entries: collections.OrderedDict[str, Programs] = collections.OrderedDict()

  def get(self, key: str, build: Callable[[], Programs]) -> Programs:
    """The programs stored under ``key``, built (and stored) if absent."""
    if key in self._entries:
      self._entries.move_to_end(key)
    else:
      self._entries[key] = build()
      while len(self._entries) > self.size:
        self._entries.popitem(last=False)
    return self._entries[key]


def build_programs(config: Any, dp: parallel.DataParallel, model: Any, *, steps_per_epoch: int,
                   total_steps: int, cache: ProgramCache | None = None) -> Programs:
  """Optimiser and data-parallel steps of ``model`` for ``config``, from ``cache`` when given."""
  if cache is None:
    return _build(config, dp, model, steps_per_epoch, total_steps)
  program_config = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_PROGRAM}
  key = json.dumps([program_config, repr(model), dp.mode, [d.id for d in dp.devices],
                    steps_per_epoch, total_steps], sort_keys=True, default=repr)
  return cache.get(key, lambda: _build(config, dp, model, steps_per_epoch, total_steps))


def _build(config: Any, dp: parallel.DataParallel, model: Any, steps_per_epoch: int,
           total_steps: int) -> Programs:
  lr_fn = optimizers.create_learning_rate_fn(config, steps_per_epoch, total_steps)
  tx = optimizers.create_optimizer(config, lr_fn)
  ema_decay = float(config.ema_decay)
  init_fn = state_lib.make_init_fn(model, tx, image_size=config.image_size, ema=ema_decay > 0)
  # Tracing the model here also raises the model's own UserErrors (e.g. an image too small)
  # before anything is compiled.
  abstract_state = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
  return Programs(
      model=model, tx=tx, learning_rate_fn=lr_fn,
      init_fn=functools.partial(state_lib.create_train_state, model, tx,
                                image_size=config.image_size, ema=ema_decay > 0),
      abstract_state=abstract_state,
      train_step=dp.train_step(step_lib.make_train_step(
          model, tx, lr_fn, aux_weight=float(config.aux_weight),
          label_smoothing=float(config.label_smoothing), ema_decay=ema_decay,
          normalization=config.normalization, axis_name=dp.axis_name)),
      eval_step=dp.eval_step(step_lib.make_eval_step(
          model, normalization=config.normalization, axis_name=dp.axis_name)),
      # Compiled on first use only: runs without precise BN never pay for it.
      bn_stats_step=dp.eval_step(step_lib.make_batch_norm_stats_step(
          model, momentum=getattr(model, 'bn_momentum', models.BN_MOMENTUM),
          normalization=config.normalization, axis_name=dp.axis_name)))
