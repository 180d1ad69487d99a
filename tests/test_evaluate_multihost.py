"""``tools.evaluate`` on two jax.distributed processes equals the one-process run, count for count.

A tiny GoogLeNet checkpoint (random weights, built without compiling) is evaluated on the digits
validation split (360 examples) at an eval batch of 160 images: 160 examples with 1 crop, 32 with
the 5 unmirrored corner and centre views (``random_flip`` is off); neither divides 360, so each
process's share ends in padding that must be masked. The one-process run has 2 CPU devices; each
of the two processes has 1, so every device computes the same image count in both.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from inception_jax import models
from inception_jax.config import schema
from inception_jax.data import digits
from inception_jax.inference import evaluation
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import state as state_lib
from _training_helpers import random_variables  # pylint: disable=g-bad-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16
MODEL = 'googlenet_tv'
OVERRIDES = {'width_multiplier': 0.0625, 'aux_logits': False}
EVAL_BATCH = 160  # 360 % 160 and 360 % 32 (5 views) leave partial batches
# What may differ between a one- and a two-process run of the same evaluation.
PER_RUN = ('seconds', 'processes', 'examples_per_process')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """A training workdir of a tiny model and the digits, prepared before any process reads them."""
  root = tmp_path_factory.mktemp('evaluate_multihost')
  model = models.create(MODEL, num_classes=10, **OVERRIDES)
  variables = random_variables(model, SIZE, seed=3)
  config = schema.base_config()
  config.model = MODEL
  config.image_size = SIZE
  for k, v in OVERRIDES.items():
    config.model_overrides[k] = v
  host_state = jax.device_get(state_lib.TrainState(
      step=np.int32(3), params=variables['params'], batch_stats=variables['batch_stats'],
      opt_state=optax.sgd(0.1).init(variables['params']), ema_params=None,
      rng=np.zeros(2, np.uint32), nonfinite_step=np.int32(-1), nonfinite_what=np.int32(0)))
  workdir = str(root / 'run')
  checkpointer = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir), async_save=False)
  checkpointer.save(host_state, ckpt_lib.build_metadata(config, host_state, num_classes=10,
                                                        total_steps=3))
  checkpointer.close()
  data_dir = str(root / 'tfds')
  digits.ensure_prepared(data_dir)  # concurrent first builds by several processes would race
  eval_config = schema.base_config()  # dataset 'digits'
  eval_config.data_dir = data_dir
  eval_config.eval_batch_size = EVAL_BATCH
  eval_config.image_size = SIZE
  return {'root': root, 'workdir': workdir, 'data_dir': data_dir, 'config': eval_config}


def _launch(setup, crops: int, processes: int, out: str) -> list[subprocess.Popen]:
  """``processes`` evaluate CLIs of one job (2 CPU devices in all), started at once."""
  port = _free_port()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', JAX_NUM_CPU_DEVICES=str(2 // processes))
  env.pop('XLA_FLAGS', None)
  command = [sys.executable, '-m', 'inception_jax.tools.evaluate',
             f'--checkpoint={setup["workdir"]}',
             f'--crops={crops}', f'--config.data_dir={setup["data_dir"]}',
             f'--config.eval_batch_size={EVAL_BATCH}', f'--json={out}']
  if processes > 1:
    command += [f'--coordinator_address=127.0.0.1:{port}', f'--num_processes={processes}',
                '--heartbeat_timeout=60']
  return [subprocess.Popen(command + ([f'--process_id={i}'] if processes > 1 else []), cwd=REPO,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for i in range(processes)]


def _finish(procs: list[subprocess.Popen], timeout: float = 400) -> list[tuple[str, str]]:
  outputs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=timeout)
      assert p.returncode == 0, f'exit {p.returncode}\n{out}\n{err[-3000:]}'
      outputs.append((out, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return outputs


@pytest.mark.slow  # six processes; each compiles the classifier once
def test_two_processes_count_every_example_once_and_equal_one_process(setup):
  root = setup['root']
  jobs = {(crops, n): _launch(setup, crops, n, str(root / f'crops{crops}_p{n}.json'))
          for crops in (1, 10) for n in (1, 2)}  # all at once: the launches overlap
  outputs = {key: _finish(procs) for key, procs in jobs.items()}
  for crops in (1, 10):
    one = json.loads((root / f'crops{crops}_p1.json').read_text())
    two = json.loads((root / f'crops{crops}_p2.json').read_text())
    # Every example once: the split's size in all, half of it read by each process.
    assert one['num_examples'] == two['num_examples'] == 360
    assert one['examples_per_process'] == [360] and one['processes'] == 1
    assert two['examples_per_process'] == [180, 180] and two['processes'] == 2
    assert two['examples_per_batch'] == EVAL_BATCH // two['views']
    assert 360 % two['examples_per_batch']
    # The same figures (and everything else that describes the evaluation).
    assert {k: v for k, v in one.items() if k not in PER_RUN} == {
        k: v for k, v in two.items() if k not in PER_RUN}
    assert 0 < two['top5'] and two['top1'] * 360 == round(two['top1'] * 360)
    # Only process 0 speaks: the result line, the views line.
    (out0, err0), (out1, err1) = outputs[(crops, 2)]
    assert '360 examples' in out0 and 'in 2 processes' in out0 and 'top-1' not in out1
    assert 'views:' in err0 and 'views:' not in err1


@pytest.mark.slow  # two whole passes of the eval pipeline, no model
@pytest.mark.parametrize('crops', [1, 10])
def test_process_shares_of_the_views_are_disjoint_and_cover_the_split(setup, crops):
  """The views datasets of two processes hold each example once between them (its views and
  label, compared as bytes), pad to the same number of batches, and mask only the padding."""
  config = setup['config']
  whole = collections.Counter()
  shares = collections.Counter()
  batches = []
  ds, _ = evaluation.views_dataset(config, crops, 16)
  for b in tfds.as_numpy(ds):
    whole.update(_examples(b))
  for index in range(2):
    ds, _ = evaluation.views_dataset(config, crops, 8, process_index=index, process_count=2)
    n = 0
    for b in tfds.as_numpy(ds):
      shares.update(_examples(b))
      assert not b['image'][~b['mask']].any()  # padding: zero images, masked
      n += 1
    batches.append(n)
  assert batches == [23, 23]  # ceil(180 / 8): one shape everywhere
  assert sum(whole.values()) == sum(shares.values()) == 360
  assert shares == whole


def _examples(batch) -> list[bytes]:
  return [batch['image'][i].tobytes() + bytes([int(batch['label'][i])])
          for i in np.flatnonzero(batch['mask'])]


@pytest.mark.slow  # two processes; one is killed while the other evaluates
def test_a_killed_process_stops_the_other_with_one_line(setup):
  procs = _launch(setup, 1, 2, str(setup['root'] / 'killed.json'))
  survivor, victim = procs
  try:
    head = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # process 0 says its views just before the first batch
      head.append(survivor.stderr.readline())
      if not head[-1] or head[-1].startswith('views:'):
        break
    victim.kill()
    out, err = survivor.communicate(timeout=300)
    err = ''.join(head) + err
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  victim.communicate()
  assert survivor.returncode == 2, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith('error: process 0 of 2: another process of this job failed or was '
                         'killed') and 'start all 2 processes again' in last, err[-3000:]
  assert 'Traceback' not in err and 'top-1' not in out, err[-3000:]
