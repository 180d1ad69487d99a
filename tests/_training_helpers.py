"""Helpers for the training tests, and the worker of the two-process test.

``TinyNet`` follows the models contract (ModelOutput with logits and aux logits, BatchNorm,
dropout, ``num_classes``/``dtype``/``aux_logits`` fields, ``check_config()``,
``min_input_size()``) at a size that compiles in a second, so tests of the model-agnostic parts
(parallel, checkpoint, loop) stay fast. ``TINYNET`` is its registry entry, for the tests that
need it by name (``registered``; tests/fault_helpers.py registers it in its train.py).

Run as a script it is one process of a ``jax.distributed`` job (see test_multihost.py)::

  python tests/_training_helpers.py --port P --process_id I --num_processes N --workdir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from typing import Any, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

if __name__ == '__main__':  # as a script: make the repo importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from inception_jax import models  # pylint: disable=g-import-not-at-top
from inception_jax.models import ModelOutput  # pylint: disable=g-import-not-at-top
from inception_jax.training import programs, run_setup  # pylint: disable=g-import-not-at-top
from inception_jax.config import schema  # pylint: disable=g-import-not-at-top

# One cache of compiled programs for every in-process run of the suite: runs of the same program
# (TinyNet on 2 devices, in several test files) compile it once.
PROGRAMS = programs.ProgramCache()


def loop_options(**fields) -> run_setup.LoopOptions:
  """The loop's options for a test run: no progress bar, the suite's program cache."""
  return run_setup.LoopOptions(**{'show_progress': False, 'programs': PROGRAMS, **fields})


class TinyNet(nn.Module):
  """conv-BN-relu, an aux head, conv-BN-relu /2, global pool, dropout, dense."""
  num_classes: int = 10
  width: int = 8
  use_bn: bool = True
  dropout_rate: float = 0.3
  aux_logits: bool = True
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None   # synchronised batch norm, as the real models' field

  def check_config(self) -> None:
    pass

  def min_input_size(self) -> int:
    return 8

  @nn.compact
  def __call__(self, x, train: bool = False) -> ModelOutput:
    def block(x, features, strides, name):
      x = nn.Conv(features, (3, 3), strides=strides, use_bias=not self.use_bn, dtype=self.dtype,
                  name=f'{name}_conv')(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-3,
                         dtype=self.dtype, axis_name=self.bn_axis_name, name=f'{name}_bn')(x)
      return nn.relu(x)

    x = block(x.astype(self.dtype), self.width, 1, 'conv1')
    aux = {}
    if self.aux_logits and (train or self.is_initializing()):
      aux['aux1'] = nn.Dense(self.num_classes, dtype=self.dtype, name='aux1')(x.mean((1, 2)))
    x = block(x, 2 * self.width, 2, 'conv2')
    x = x.mean((1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name='fc')(x)
    aux = {k: v.astype(jnp.float32) for k, v in aux.items()} if train else {}
    return ModelOutput(logits=logits.astype(jnp.float32), aux_logits=aux)


TINYNET = models.ModelSpec(TinyNet, 'test model (tests/_training_helpers.py)')


@contextlib.contextmanager
def registered(name: str, spec: models.ModelSpec) -> Iterator[None]:
  """``spec`` in the model registry as ``name`` for the duration of the block."""
  models.register(name, spec)
  try:
    yield
  finally:
    models.unregister(name)


def numpy_init(abstract, seed=0):
  """Fills an abstract variable tree with numpy: He-normal kernels, BN scale/var 1, the rest 0.

  Tests use it instead of compiling the model's initialiser (several seconds even for TinyNet,
  most of it the random-number kernels); the values only need to be a sensible start.
  """
  rng = np.random.RandomState(seed)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      fan_in = int(np.prod(s.shape[:-1]))
      return (rng.randn(*s.shape) * math.sqrt(2.0 / fan_in)).astype(s.dtype)
    if name.endswith("['scale']") or name.endswith("['var']"):
      return np.ones(s.shape, s.dtype)
    return np.zeros(s.shape, s.dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def random_variables(model, size: int, seed: int, *, train: bool = True) -> dict:
  """Random float32 numpy variables of ``model``'s shapes at ``size`` px, from an abstract init
  (nothing is compiled). Unlike :func:`numpy_init`, every array differs from its identity value,
  so a checkpoint of them tests every mapping (BN statistics and scales included). ``train``:
  trace as in training, which builds the aux heads' variables too.
  """
  key = jax.random.PRNGKey(0)
  abstract = jax.eval_shape(lambda: model.init(
      {'params': key, 'dropout': key}, jnp.zeros((1, size, size, 3)), train=train))
  rng = np.random.default_rng(seed)

  def fill(path, x):
    name = jax.tree_util.keystr(path)
    if name.endswith("['kernel']"):
      return rng.normal(0, 1.5 / math.sqrt(np.prod(x.shape[:-1])), x.shape).astype(np.float32)
    if name.endswith("['var']"):
      return rng.uniform(0.5, 1.5, x.shape).astype(np.float32)
    if name.endswith("['scale']"):
      return rng.uniform(0.8, 1.2, x.shape).astype(np.float32)
    return rng.normal(0, 0.2, x.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, dict(abstract))


def numpy_train_state(model, tx, *, image_size: int, ema: bool = False, seed: int = 0):
  """A host TrainState like ``state.create_train_state`` but without compiling anything."""
  from inception_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
  variables = numpy_init(jax.eval_shape(
      lambda: model.init({'params': jax.random.PRNGKey(0), 'dropout': jax.random.PRNGKey(0)},
                         jnp.zeros((2, image_size, image_size, 3)), train=True)), seed)
  params = variables['params']
  return state_lib.TrainState(
      step=np.zeros((), np.int32), params=params, batch_stats=variables.get('batch_stats', {}),
      opt_state=jax.device_get(tx.init(params)),
      ema_params=jax.tree.map(np.copy, params) if ema else {},
      rng=np.asarray(jax.random.PRNGKey(seed)), nonfinite_step=np.full((), -1, np.int32),
      nonfinite_what=np.zeros((), np.int32))


def tiny_config(**overrides) -> Any:
  """A digits config for TinyNet: 12 px, batch 16, a handful of steps, quiet cadence."""
  c = schema.base_config()
  c.model = 'tinynet'
  c.dataset = 'digits'
  c.image_size = 12
  c.augment = 'resize'
  c.random_flip = False
  c.eval_crop_fraction = 1.0
  c.shuffle_buffer = 2048
  c.global_batch_size = 16
  c.eval_batch_size = 64            # 360 = 5 * 64 + 40: the last batch is padded and masked
  c.num_train_steps = 8
  c.learning_rate = 0.05
  c.base_batch_size = 16
  c.lr_schedule = 'cosine'
  c.momentum = 0.9
  c.weight_decay = 1e-4
  c.aux_weight = 0.3
  c.log_every_steps = 2
  c.checkpoint_every_steps = 3
  c.keep_checkpoints = 5
  c.tensorboard = False
  for k, v in overrides.items():
    c[k] = v
  return c


def _worker(argv=None) -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--port', type=int, required=True)
  parser.add_argument('--process_id', type=int, required=True)
  parser.add_argument('--num_processes', type=int, default=2)
  parser.add_argument('--local_devices', type=int, default=2)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--modes', default='shard_map,pmap')
  args = parser.parse_args(argv)

  jax.config.update('jax_num_cpu_devices', args.local_devices)
  from inception_jax.training import checkpoint, loop, parallel  # pylint: disable=g-import-not-at-top
  parallel.maybe_initialize_distributed(f'127.0.0.1:{args.port}', args.num_processes,
                                        args.process_id)
  out = {'process_index': jax.process_index(), 'process_count': jax.process_count(),
         'devices': jax.device_count()}
  for mode in args.modes.split(','):
    config = tiny_config(parallel=mode, num_train_steps=4, checkpoint_every_steps=2,
                         log_every_steps=2)
    result = loop.train_and_evaluate(config, os.path.join(args.workdir, mode),
                                     loop_options(model=TinyNet()))
    out[mode] = {'step': result.step, 'checksum': checkpoint.state_checksum(result.state),
                 'eval': result.final_eval}
  print('RESULT ' + json.dumps(out), flush=True)


if __name__ == '__main__':
  _worker()
