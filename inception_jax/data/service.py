"""The tf.data service: decoding and augmentation on other hosts, for trainers short of cores.

A dispatcher (``start_dispatcher``) lists a fixed set of workers (``start_worker``); the training
pipeline sends each epoch of each process to them as its own job (``ServiceBatches``). Why each
choice (``input_pipeline``'s docstring states what a run then guarantees):

* Static sharding, ``ShardingPolicy.HINT``: the epoch's records carry their index in the epoch,
  and ``shard(SHARD_HINT, SHARD_HINT)`` right after it becomes ``shard(num_workers, i)`` on
  worker ``i`` of the dispatcher's list, so the workers split every epoch into disjoint parts and
  each decodes only its own. ``DYNAMIC`` is at-most-once (a restarted worker loses its split),
  ``DATA`` shards after the whole pipeline (every worker would decode everything) and ``FILE``
  would undo the per-epoch record shuffle. Static sharding needs the dispatcher's fixed worker
  list; a worker restarted under it replays its part from the beginning, and the consumer drops
  every index it has already seen, so an epoch is still delivered exactly once.
* One job per (run, process, epoch): a job ends when every worker has finished its part, so no
  batch mixes two epochs, and a finished job proves the epoch complete (the consumer checks the
  count). Job names are never reused (the service would hand a reused name's leftovers to a new
  run), so each iterator draws a fresh prefix.
* Checks on what arrives: a job whose listed worker is absent or dies ends early without any
  error (seen with TF 2.21), so the consumer counts each epoch and raises a one-line
  ``UserError`` when one falls short; and the service's client retries a silent dispatcher for
  an hour, so a read that yields nothing for ``stall_timeout_s`` raises one too.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import threading
import uuid
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from inception_jax.errors import UserError

_SERVICE = tf.data.experimental.service
DISPATCHER_COMMAND = 'python -m inception_jax.tools.data_service dispatcher --port PORT --workers HOST:PORT,...'
WORKER_COMMAND = 'python -m inception_jax.tools.data_service worker --dispatcher {address} --port PORT'
# A silent service for this long is a dead one. ImageNet workers fill a 16k-record shuffle block
# before their first batch; this leaves them minutes. INCEPTION_JAX_DATA_SERVICE_TIMEOUT_S overrides.
STALL_TIMEOUT_S = 600.0
PROBE_TIMEOUT_S = 10.0
_ADDRESS = re.compile(r'^(?:grpc://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$')


def parse_address(address: str) -> tuple[str, int]:
  """(host, port) of ``HOST:PORT`` (``grpc://`` allowed); a UserError otherwise."""
  m = _ADDRESS.match(str(address).strip())
  if not m or not 0 < int(m.group(2)) < 65536:
    raise UserError(f'tf.data service address {address!r} is not HOST:PORT (e.g. '
                    f'dataservice-host:5050)')
  return m.group(1).strip('[]'), int(m.group(2))


def stall_timeout_s() -> float:
  return float(os.environ.get('INCEPTION_JAX_DATA_SERVICE_TIMEOUT_S', STALL_TIMEOUT_S))


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
  """A UserError within ``timeout_s`` unless something accepts connections at ``address``.

  The service's own client retries an absent dispatcher for an hour; a TCP connect is bounded.
  """
  host, port = parse_address(address)
  try:
    socket.create_connection((host, port), timeout=timeout_s).close()
  except OSError as e:
    raise UserError(f'no tf.data service dispatcher answers at {host}:{port} '
                    f'({e.strerror or e}); start one with `{DISPATCHER_COMMAND}` and its workers '
                    f'with `{WORKER_COMMAND.format(address=f"{host}:{port}")}`') from None


def start_dispatcher(port: int, workers: list[str], work_dir: str | None = None
                     ) -> _SERVICE.DispatchServer:
  """A dispatcher on ``port`` for exactly ``workers`` (``HOST:PORT`` each, as they register).

  With ``work_dir`` it journals its state there and recovers it when restarted.
  """
  if not workers:
    raise UserError('the dispatcher needs its workers listed (--workers HOST:PORT,...): static '
                    'sharding splits each epoch over a fixed list')
  for w in workers:
    parse_address(w)
  config = _SERVICE.DispatcherConfig(port=port, work_dir=work_dir,
                                     fault_tolerant_mode=bool(work_dir),
                                     worker_addresses=list(workers))
  return _SERVICE.DispatchServer(config)


def start_worker(dispatcher: str, port: int, host: str) -> _SERVICE.WorkerServer:
  """A worker registered as ``host:port`` (the name the dispatcher's list must hold)."""
  d_host, d_port = parse_address(dispatcher)
  probe(dispatcher)
  return _SERVICE.WorkerServer(_SERVICE.WorkerConfig(
      dispatcher_address=f'{d_host}:{d_port}', worker_address=f'{host}:{port}', port=port))


def shard_hint(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Where the workers split an epoch: each keeps every num_workers-th element from here on."""
  hint = tf.data.experimental.SHARD_HINT
  return ds.shard(hint, hint)


def distribute(ds: tf.data.Dataset, address: str, job_name: str) -> tf.data.Dataset:
  """``ds`` computed by the workers, statically sharded at its ``shard_hint``."""
  host, port = parse_address(address)
  return ds.apply(_SERVICE.distribute(
      processing_mode=_SERVICE.ShardingPolicy.HINT, service=f'grpc://{host}:{port}',
      job_name=job_name, target_workers='ANY'))


class ServiceBatches:
  """This process's training batches, epoch after epoch, each epoch a job of the service.

  ``make_epoch(epoch)`` is the dataset the workers run: batches of dicts with an int64 ``index``
  (position in the epoch; sharded by ``shard_hint`` before decoding); epoch ``e`` must yield the
  indices ``range(skip(e), epoch_size)``. The consumer drops repeated indices, checks that each
  job delivered every index, and re-batches to ``batch_size`` without ``index``.
  """

  def __init__(self, make_epoch: Callable[[int], tf.data.Dataset], *, address: str,
               start_epoch: int, epoch_size: int, skip: Callable[[int], int], batch_size: int,
               process_index: int, timeout_s: float | None = None, buffer: int = 4):
    self._make_epoch, self._address, self._epoch = make_epoch, address, start_epoch
    self._epoch_size, self._skip, self._batch_size = epoch_size, skip, batch_size
    self._timeout = stall_timeout_s() if timeout_s is None else float(timeout_s)
    self._prefix = f'inception-{uuid.uuid4().hex[:12]}-p{process_index}'
    self._queue: queue.Queue = queue.Queue(maxsize=buffer)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, name='tf.data service reader',
                                    daemon=True)  # may sit in a blocked TF call; never joined
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.5)
        return True
      except queue.Full:
        pass
    return False

  def _produce(self) -> None:
    try:
      while not self._stop.is_set():
        for batch in self._one_epoch(self._epoch):
          if not self._put(batch):
            return
        self._epoch += 1
    except Exception as e:  # pylint: disable=broad-except  # re-raised by the consumer
      self._put(e)

  def _one_epoch(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
    skip = self._skip(epoch)
    seen = np.zeros(self._epoch_size, bool)
    seen[:skip] = True
    ds = distribute(self._make_epoch(epoch), self._address, f'{self._prefix}-e{epoch}')
    pending: list[dict[str, np.ndarray]] = []
    count = 0
    try:
      for part in ds.as_numpy_iterator():
        index = part.pop('index')
        fresh = ~seen[index]
        seen[index] = True
        if not fresh.all():
          part = {k: v[fresh] for k, v in part.items()}
        pending.append(part)
        count += len(part['label'])
        while count >= self._batch_size:
          batch, pending, count = _split(pending, self._batch_size)
          yield batch
    except tf.errors.OpError as e:
      raise UserError(f'the tf.data service at {self._address} failed in epoch {epoch}: '
                      f'{" ".join(str(e.message).split())[:300]}') from None
    if not seen.all():
      raise UserError(f'the tf.data service at {self._address} delivered '
                      f'{int(seen.sum()) - skip} of the {self._epoch_size - skip} examples of '
                      f'epoch {epoch} (a listed worker is missing or died); check that every '
                      f"worker of the dispatcher's --workers list runs, then rerun training: it "
                      f'resumes from its last checkpoint')

  def __iter__(self) -> ServiceBatches:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    try:
      item = self._queue.get(timeout=self._timeout)
    except queue.Empty:
      self.close()
      raise UserError(
          f'the tf.data service at {self._address} stopped answering for {self._timeout:.0f} s '
          f'(epoch {self._epoch}); check that its dispatcher and every listed worker run '
          f'(`{WORKER_COMMAND.format(address=self._address)}`), then rerun training: it resumes '
          f'from its last checkpoint') from None
    if isinstance(item, BaseException):
      self.close()
      raise item
    return item

  def close(self) -> None:
    self._stop.set()


def _split(parts: list[dict[str, np.ndarray]], n: int
           ) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]], int]:
  """The first ``n`` examples of ``parts`` as one batch, and the rest."""
  whole = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  rest = {k: v[n:] for k, v in whole.items()}
  count = len(rest['label'])
  return {k: v[:n] for k, v in whole.items()}, ([rest] if count else []), count
