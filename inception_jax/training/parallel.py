"""Data parallelism: the only module that knows devices, processes and meshes.

The same pure step (``inception_jax.training.step``) runs two ways, chosen by ``config.parallel``:

* ``pmap``: ``jax.pmap`` over the devices; the state is replicated with a leading device axis
  ``[n_devices, ...]`` and a batch is ``[n_local_devices, per_device, ...]`` per process.
* ``shard_map``: ``jax.jit(jax.shard_map(...))`` over a 1-D ``Mesh`` with axis ``'batch'``; the state
  is a replicated global array and a batch a global array ``[global_batch, ...]`` sharded on that
  axis, assembled from each process's part with ``jax.make_array_from_process_local_data``.

Both give the same numbers (tested). Current JAX implements pmap itself on jit + shard_map and keeps it
in maintenance mode; ``shard_map`` is the forward-looking path. Host code outside this module sees
only ``DataParallel``'s methods: ``put_state``/``get_state``, ``put_batch``/``prefetch``,
``train_step``/``eval_step`` and ``to_host``.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from inception_jax.errors import UserError
from inception_jax.config.schema import PARALLEL_MODES as MODES
from inception_jax.training.step import AXIS_NAME
PyTree = Any


# ----------------------------------------------------------------------------- multi-host set-up


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  return int(value) if value not in (None, '') else None


def launched_as_one_of_many() -> bool:
  """True when the environment says this process is one of several of one job.

  Recognises Cloud TPU pod slices (``TPU_WORKER_HOSTNAMES`` listing several hosts, or multislice
  ``MEGASCALE_COORDINATOR_ADDRESS``), SLURM (``SLURM_NTASKS`` > 1), Open MPI
  (``OMPI_COMM_WORLD_SIZE`` > 1) and an explicit ``JAX_COORDINATOR_ADDRESS``.
  """
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  if len([h for h in hosts.split(',') if h.strip()]) > 1:
    return True
  if os.environ.get('MEGASCALE_COORDINATOR_ADDRESS'):
    return True
  for name in ('SLURM_NTASKS', 'SLURM_STEP_NUM_TASKS', 'OMPI_COMM_WORLD_SIZE'):
    if (_env_int(name) or 1) > 1:
      return True
  return bool(os.environ.get('JAX_COORDINATOR_ADDRESS'))


def maybe_initialize_distributed(coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None, *,
                                 force: bool = False,
                                 heartbeat_timeout: int | None = None) -> bool:
  """Calls ``jax.distributed.initialize`` when this process is one of many; returns whether it did.

  Explicit arguments (or ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``)
  win; otherwise JAX auto-detects the cluster (TPU pod, SLURM, Open MPI, Kubernetes) when
  :func:`launched_as_one_of_many` or ``force`` says so. Must run before any other JAX call.
  ``heartbeat_timeout`` (seconds; JAX's default 100 when None) bounds how long the job waits for a
  process that vanished without closing its connections before every process is stopped.
  """
  options = ({} if heartbeat_timeout is None
             else {'heartbeat_timeout_seconds': int(heartbeat_timeout)})
  coordinator_address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS') or None
  num_processes = num_processes if num_processes is not None else _env_int('JAX_NUM_PROCESSES')
  process_id = process_id if process_id is not None else _env_int('JAX_PROCESS_ID')
  if coordinator_address or num_processes is not None or process_id is not None:
    if not (coordinator_address and num_processes is not None and process_id is not None):
      # Partial settings are fine where a cluster environment supplies the rest (e.g. SLURM).
      if not launched_as_one_of_many():
        raise UserError('multi-process launch needs all of --coordinator_address, --num_processes '
                        'and --process_id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, '
                        'JAX_PROCESS_ID)')
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id, **options)
    return True
  if force or launched_as_one_of_many():
    jax.distributed.initialize(**options)
    return True
  return False


# ----------------------------------------------------------------------------- data parallelism


class DataParallel:
  """Runs a named-axis step data-parallel over devices (and processes).

  Args:
    mode: ``'pmap'`` or ``'shard_map'``.
    num_devices: use only the first ``num_devices`` local devices (single-process only; for tests
      and small runs). ``None`` or 0: every device of every process.
  """

  def __init__(self, mode: str = 'pmap', num_devices: int | None = None,
               axis_name: str = AXIS_NAME):
    if mode not in MODES:
      raise UserError(f"unknown parallel mode {mode!r}; choose one of {', '.join(MODES)}")
    self.mode = mode
    self.axis_name = axis_name
    self.process_count = jax.process_count()
    self.process_index = jax.process_index()
    if num_devices:
      if self.process_count > 1:
        raise UserError('num_devices can only restrict the devices of a single-process run; '
                        'leave it at 0 when launching several processes')
      local = jax.local_devices()
      if not 0 < num_devices <= len(local):
        raise UserError(f'num_devices={num_devices} but this machine has {len(local)} '
                        f'{local[0].platform} device(s)')
      self.devices = list(local[:num_devices])
    else:
      self.devices = list(jax.devices())
    self.local_devices = [d for d in self.devices if d.process_index == self.process_index]
    self.num_devices = len(self.devices)
    self.num_local_devices = len(self.local_devices)
    # pmap lays its replicated/sharded values out on a mesh over the same devices, in this order.
    self.mesh = Mesh(np.asarray(self.devices), (axis_name,))
    self._replicated = NamedSharding(self.mesh, P())
    self._sharded = NamedSharding(self.mesh, P(axis_name))
    self._restricted = bool(num_devices)

  # -- state

  def put_state(self, state: PyTree) -> PyTree:
    """Host (or single-device) state -> replicated on the devices (same values on every process)."""
    if self.mode == 'pmap':
      n = self.num_devices

      def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback((n,) + x.shape, self._sharded,
                                            lambda idx: x[None])
    else:

      def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, self._replicated, lambda idx: x[idx])

    return jax.tree.map(put, state)

  def get_state(self, state: PyTree) -> PyTree:
    """Replicated device state -> host numpy arrays (one copy; blocks until computed)."""
    first = jax.tree.map(lambda x: x.addressable_shards[0].data, state)
    host = jax.device_get(first)  # one batched transfer rather than one per leaf
    if self.mode == 'pmap':
      return jax.tree.map(lambda x: np.array(x[0]), host)
    return jax.tree.map(np.array, host)

  def to_host(self, tree: PyTree) -> PyTree:
    """Metrics (replicated by pmean/psum) -> host numpy values without the device axis."""
    return self.get_state(tree)

  # -- batches

  def put_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's batch ``{key: [local_batch, ...]}`` -> device arrays.

    pmap: ``[n_devices, per_device, ...]`` sharded on the device axis; shard_map: the global
    ``[global_batch, ...]`` array sharded over the mesh.
    """
    n_local = self.num_local_devices

    def put(x):
      x = np.asarray(x)
      if x.shape[0] % n_local:
        raise UserError(f'a batch of {x.shape[0]} examples does not split over the '
                        f'{n_local} local devices')
      if self.mode == 'pmap':
        x = x.reshape((n_local, x.shape[0] // n_local) + x.shape[1:])
      return jax.make_array_from_process_local_data(self._sharded, x)

    return {k: put(v) for k, v in batch.items()}

  def prefetch(self, batches: Iterable[Mapping[str, np.ndarray]],
               size: int = 2) -> Iterator[dict[str, jax.Array]]:
    """Device batches, put on the devices by a background thread that keeps ``size`` ready.

    Why a thread: pulling a batch from the host pipeline and copying it to the devices take host
    time (GoogLeNet at batch 256 copies 154 MB per float32 step); done between two step dispatches
    it delays the next dispatch, which on a GPU slows the loop measurably below the bare step
    (benchmarks/RESULTS.md, GPU: the training loop). In a thread it overlaps the running step.
    Order is the iterator's; an exception raised while producing a batch is raised here, at that
    batch.
    """
    return _background(iter(batches), self.put_batch, size)

  # -- steps

  def train_step(self, step_fn: Callable) -> Callable:
    """``step_fn(state, batch, rng) -> (state, metrics)`` mapped over the devices; the state's
    buffers are donated (the input state must not be used after the call)."""
    if self.mode == 'pmap':
      return jax.pmap(step_fn, axis_name=self.axis_name, in_axes=(0, 0, None),
                      devices=self._pmap_devices(), donate_argnums=(0,))
    # check_vma=False gives the step pmap's semantics: gradients of the local loss stay per device
    # and the step's own lax.pmean averages them. (With varying-manual-axes typing, the transpose
    # of the replicated params would already psum them, and the pmean would then be a no-op: the
    # gradient would be n_devices times too large.)
    mapped = jax.shard_map(step_fn, mesh=self.mesh, in_specs=(P(), P(self.axis_name), P()),
                           out_specs=(P(), P()), check_vma=False)
    return jax.jit(mapped, in_shardings=(self._replicated, self._sharded, self._replicated),
                   out_shardings=(self._replicated, self._replicated), donate_argnums=(0,))

  def eval_step(self, step_fn: Callable) -> Callable:
    """``step_fn(state, batch) -> sums`` (psum'd) mapped over the devices."""
    if self.mode == 'pmap':
      return jax.pmap(step_fn, axis_name=self.axis_name, devices=self._pmap_devices())
    mapped = jax.shard_map(step_fn, mesh=self.mesh, in_specs=(P(), P(self.axis_name)),
                           out_specs=P(), check_vma=False)
    return jax.jit(mapped, in_shardings=(self._replicated, self._sharded),
                   out_shardings=self._replicated)

  def put_replicated(self, x: Any) -> jax.Array:
    """A small value (e.g. the base RNG key) the mapped steps take unmapped (pmap ``in_axes=None``)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, self._replicated, lambda idx: x[idx])

  def _pmap_devices(self):
    return self.devices if self._restricted else None

  def __repr__(self) -> str:
    return (f'DataParallel({self.mode}, {self.num_devices} {self.devices[0].platform} device(s), '
            f'{self.process_count} process(es))')


def _background(iterator: Iterator[Any], fn: Callable[[Any], Any], size: int) -> Iterator[Any]:
  """``fn(x) for x in iterator``, computed ahead in a daemon thread; ``size`` results wait ready.

  The thread starts at the first ``next``. Closing (or dropping) the returned generator stops it
  after at most the item it is working on, so an abandoned loop leaves nothing running.
  """
  if size < 1:
    raise ValueError(f'prefetch size must be >= 1, got {size}')
  results: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()
  done = object()

  def offer(item) -> bool:
    while not stop.is_set():
      try:
        results.put(item, timeout=0.05)
        return True
      except queue.Full:
        continue
    return False

  def produce():
    try:
      for x in iterator:
        if stop.is_set() or not offer((fn(x), None)):
          return
      offer((done, None))
    except BaseException as e:  # pylint: disable=broad-except  # re-raised in the consumer
      offer((None, e))

  def consume():
    # Started at the first request, so a generator that is never iterated leaves no thread.
    thread = threading.Thread(target=produce, name='inception_jax-prefetch', daemon=True)
    thread.start()
    try:
      while True:
        value, error = results.get()
        if error is not None:
          raise error
        if value is done:
          return
        yield value
    finally:
      stop.set()
      thread.join()

  return consume()
