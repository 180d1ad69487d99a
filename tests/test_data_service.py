"""Tests of the tf.data service path: a dispatcher and two workers (the real command line, as
subprocesses) on 127.0.0.1; an epoch through them is the local epoch as a multiset; a resume
skips the same examples; train.py trains through them; absent services give one-line errors."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest

from inception_jax.config import schema
from inception_jax.data import digits
from inception_jax.data import input_pipeline as ip
from inception_jax.errors import UserError

import fault_helpers as fh

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, '-m', 'inception_jax.tools.data_service']


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, timeout: float = 120) -> str:
  """The server's one 'listening' line, or a failure with what it printed."""
  lines = []
  reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
  reader.start()
  reader.join(timeout)
  if not lines or not lines[0]:
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.seek(0)
    pytest.fail(f'server printed nothing in {timeout} s (exit {proc.poll()}): '
                f'{proc.stderr.read()[-2000:]}')
  return lines[0]


@contextlib.contextmanager
def servers(num_workers: int = 2, start_workers: int | None = None):
  """A dispatcher for ``num_workers`` listed workers, ``start_workers`` of them running."""
  port, worker_ports = free_port(), [free_port() for _ in range(num_workers)]
  workers = ','.join(f'127.0.0.1:{q}' for q in worker_ports)
  procs = []

  def start(*args):
    procs.append(subprocess.Popen([*CLI, *args], cwd=REPO, env=fh.env(), text=True,
                                  stdout=subprocess.PIPE, stderr=tempfile.TemporaryFile('w+')))
    return procs[-1]

  try:
    lines = [wait_for_line(start('dispatcher', f'--port={port}', f'--workers={workers}'))]
    started = [start('worker', f'--dispatcher=127.0.0.1:{port}', f'--port={q}', '--host=127.0.0.1')
               for q in worker_ports[:num_workers if start_workers is None else start_workers]]
    lines += [wait_for_line(p) for p in started]
    yield f'127.0.0.1:{port}', lines
  finally:
    for p in procs:
      p.kill()
    for p in procs:
      p.wait(timeout=30)
      p.stdout.close()


@pytest.fixture(scope='module')
def digits_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  digits.ensure_prepared(data_dir)
  return data_dir


@pytest.fixture(scope='module')
def service_address():
  with servers() as (address, lines):
    assert 'dispatcher listening on port' in lines[0] and 'worker 127.0.0.1:' in lines[1]
    yield address


def make_config(data_dir, **overrides):
  """Random crops and flips on: the augmentation must travel with each example's index."""
  config = schema.base_config()
  config.update(dict(dataset='digits', data_dir=data_dir, image_size=16, shuffle_buffer=2048,
                     global_batch_size=64, augment='inception_crop', random_flip=True))
  config.update(overrides)
  return config


def examples(batches) -> collections.Counter:
  return collections.Counter(
      (int(label), hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest())
      for batch in batches for image, label in zip(batch['image'], batch['label']))


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


@pytest.mark.slow
def test_an_epoch_through_the_service_is_the_local_epoch(digits_dir, service_address):
  config = make_config(digits_dir)
  steps = ip.steps_per_epoch(config, process_count=1)            # 1437 // 64 = 22
  local = take(ip.create_train_iterator(config, process_index=0, process_count=1), 2 * steps)
  config.data_service = service_address
  remote_it = ip.create_train_iterator(config, process_index=0, process_count=1)
  remote = take(remote_it, 2 * steps)
  remote_it.close()
  assert all(b['image'].shape == (64, 16, 16, 3) and b['label'].dtype == np.int32 for b in remote)
  for epoch in range(2):  # each epoch exactly once, augmentation included; batches never mix
    part = slice(epoch * steps, (epoch + 1) * steps)
    assert examples(remote[part]) == examples(local[part])
    assert sum(examples(remote[part]).values()) == steps * 64


@pytest.mark.slow
def test_a_resume_skips_the_examples_the_local_pipeline_skips(digits_dir, service_address):
  config = make_config(digits_dir)
  steps = ip.steps_per_epoch(config, process_count=1)
  local = take(ip.create_train_iterator(config, process_index=0, process_count=1), steps)
  config.data_service = service_address
  it = ip.create_train_iterator(config, start_step=steps - 5, process_index=0, process_count=1)
  assert examples(take(it, 5)) == examples(local[-5:])
  it.close()


@pytest.mark.slow
def test_train_py_trains_through_the_service(digits_dir, service_address, tmp_path):
  proc = fh.run_train(str(tmp_path / 'w'), f'--config.data_service={service_address}',
                      '--config.num_train_steps=3', f'--config.data_dir={digits_dir}',
                      '--config.eval_every_steps=0', timeout=600)
  assert proc.returncode == 0, fh.describe(proc)
  assert fh.committed_steps(str(tmp_path / 'w'))[-1] == 3


@pytest.mark.slow
def test_a_missing_worker_is_an_error_not_half_an_epoch(digits_dir):
  """The service ends the job after the present worker's half, without an error of its own."""
  with servers(num_workers=2, start_workers=1) as (address, _):
    config = make_config(digits_dir, data_service=address)
    batches = ip.create_train_iterator(config, process_index=0, process_count=1)
    with pytest.raises(UserError, match=f'the tf.data service at {address} delivered 704 of the '
                                        '1408 examples of epoch 0 .a listed worker is missing'):
      for _ in range(30):
        next(batches)


def test_a_dead_dispatcher_is_one_line(digits_dir):
  address = f'127.0.0.1:{free_port()}'
  config = make_config(digits_dir, data_service=address)
  with pytest.raises(UserError, match=f'no tf.data service dispatcher answers at {address}.*'
                                      'inception_jax.tools.data_service dispatcher'):
    ip.create_train_iterator(config, process_index=0, process_count=1)


@pytest.mark.slow
def test_train_py_with_a_dead_dispatcher_exits_with_one_line(digits_dir, tmp_path):
  address = f'127.0.0.1:{free_port()}'
  proc = fh.run_train(str(tmp_path / 'w'), f'--config.data_service={address}',
                      f'--config.data_dir={digits_dir}', timeout=300)
  assert proc.returncode == 2, fh.describe(proc)
  assert fh.last_line(proc.stderr).startswith(f'error: no tf.data service dispatcher answers at '
                                              f'{address}')


@pytest.mark.parametrize('value', ['nohost', 'a:b', 'host:5050:1', 'http://host:5050'])
def test_a_malformed_address_is_one_line(value):
  config = make_config('/nonexistent', data_service=value, model='googlenet')
  with pytest.raises(UserError, match='data_service must be HOST:PORT'):
    schema.validate_config(config)


@pytest.mark.parametrize('argv, message', [
    (['dispatcher', '--port=5050'], 'the following arguments are required: --workers'),
    (['worker', '--dispatcher=nohost'], "address 'nohost' is not HOST:PORT"),
    (['worker', '--dispatcher=127.0.0.1:5050', '--port=0'], '--port must be in 1..65535'),
])
def test_the_command_line_rejects_bad_input_in_one_line(argv, message):
  from inception_jax.tools import data_service as cli  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError, match=message):
    cli.main(argv)
