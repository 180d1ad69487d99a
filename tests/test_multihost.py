"""Two processes with jax.distributed on 127.0.0.1 train a few steps and agree.

Each process (tests/_training_helpers.py run as a script) has 2 CPU devices, so the job has 4;
both run the real loop on the digits (each reads its own half of every batch), with shard_map and
then pmap, and write one set of Orbax checkpoints together.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_training_helpers.py')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_and_agree(tmp_path):
  port = _free_port()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('XLA_FLAGS', None)
  procs = [subprocess.Popen(
      [sys.executable, HELPER, '--port', str(port), '--process_id', str(i), '--num_processes',
       '2', '--workdir', str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True, env=env) for i in range(2)]
  outputs = []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=240)
      outputs.append(out)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  results = [json.loads(next(l for l in out.splitlines() if l.startswith('RESULT '))[7:])
             for out in outputs]
  assert [r['process_index'] for r in results] == [0, 1]
  for r in results:
    assert r['process_count'] == 2 and r['devices'] == 4
  for mode in ('shard_map', 'pmap'):
    a, b = results[0][mode], results[1][mode]
    assert a['step'] == b['step'] == 4
    assert a['checksum'] == b['checksum']          # identical replicated state on both hosts
    assert a['eval'] == b['eval'] and a['eval']['num_examples'] == 360
    assert sorted(os.listdir(tmp_path / mode / 'checkpoints')) == ['2', '4']
  # The two data-parallel implementations agree across hosts too.
  assert results[0]['shard_map']['checksum'] == results[0]['pmap']['checksum']
  # Only process 0 writes metrics.
  with open(tmp_path / 'shard_map' / 'metrics.jsonl') as f:
    assert [json.loads(l)['step'] for l in f] == [2, 4, 4]
