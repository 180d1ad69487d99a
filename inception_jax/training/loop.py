"""The training loop: a prepared run, a throughput meter and the cadence of its step boundaries.

``train_and_evaluate(config, workdir)`` is the whole program behind ``train.py``. It prepares the
run (:mod:`~inception_jax.training.run_setup`: validation, plan, programs, resume or
initialisation), trains with a progress bar, logs, evaluates and checkpoints on cadence (each save
asynchronous), and returns a :class:`TrainResult`.

Performance: the loop never waits for the device between log boundaries. Each step's metrics stay
on the device and are fetched every ``log_every_steps``; the state's buffers are donated to the
step; a background thread puts batches on the devices two steps ahead, and the images travel as
uint8 pixels (a quarter of float32's bytes), normalised inside the jitted steps.

Faults: a SIGTERM (preemption) saves the current step, waits for it to commit and returns with
``preempted=True`` (train.py then exits 143). A non-finite loss or gradient, noticed at the next log
or checkpoint boundary, raises :class:`NonFiniteError` naming the step and the metric; the bad state
is never saved, so the last checkpoint stays the last good one. At resume, a damaged newest checkpoint
is moved aside and the newest good one used (:mod:`~inception_jax.training.integrity`); a save that
fails (disk full) raises :class:`~inception_jax.training.checkpoint.CheckpointWriteError`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from inception_jax.errors import UserError
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import console, parallel, run_setup
from inception_jax.training import state as state_lib
from inception_jax.training.run_setup import LoopOptions

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: "stopped by the scheduler, not finished"


class NonFiniteError(UserError):
  """Training met a NaN/Inf loss or gradient; the state was not updated nor saved."""


@dataclasses.dataclass
class TrainResult:
  """What a run ended with. ``state`` is the final TrainState as host numpy arrays."""
  workdir: str
  step: int
  total_steps: int
  state: Any
  final_eval: dict[str, float] | None
  preempted: bool = False
  resumed_from: int | None = None


def train_and_evaluate(config: Any, workdir: str,
                       options: LoopOptions | None = None) -> TrainResult:
  """Trains (or resumes) ``config`` in ``workdir`` and evaluates; see the module docstring.

  ``config`` has the fields of ``schema.base_config`` (ARCHITECTURE.md); ``workdir`` receives
  checkpoints, TensorBoard events, config.json and metrics.jsonl; ``options`` holds what tests,
  tools and the benchmark change beyond the config (:class:`LoopOptions`; None = its defaults).
  """
  options = options or LoopOptions()
  with run_setup.prepare_run(config, workdir, options) as run:
    meter = ThroughputMeter(int(config.global_batch_size))
    cadence = Cadence(run, meter)
    state, rng = run.initial_state()
    step, total, say = run.start_step, run.total_steps, run.say
    preempted = False
    if step < total:
      batches = run.open_train_batches()
      say(_compile_notice(jax.config.jax_compilation_cache_dir))
      loop_start = time.time()
      with PreemptionWatcher(run.dp.process_count > 1) as watcher:
        while step < total:
          if watcher.should_stop(step):
            cadence.preempt(state, step)
            preempted = True
            break
          state, metrics = run.programs.train_step(state, next(batches), rng)
          step += 1
          meter.count_step()
          for hook in options.hooks:
            hook(step)
          if not meter.started:
            # Once: wait for the first step so its compile time is reported, not averaged in.
            jax.block_until_ready(metrics)
            say(f'first step (compilation included) took {time.time() - loop_start:.1f} s')
            meter.start()
            # Opened after the first step, so compile time does not skew the ETA.
            say.open_bar(options.show_progress, total, step)
          elif say.bar is not None:
            say.bar.update(1)
          state = cadence.after_step(step, state, metrics)
      say.close_bar()
      batches.close()  # stops the prefetch thread and frees its batches before evaluating
    final_eval = None
    if not preempted:
      state, final_eval = cadence.finish(state, step)
    return TrainResult(workdir=run.workdir, step=step, total_steps=total,
                       state=run.dp.get_state(state), final_eval=final_eval, preempted=preempted,
                       resumed_from=run.resumed_from)


def _compile_notice(cache: str | None) -> str:
  """The line before the first step, which compiles or, from the persistent cache, loads it."""
  if cache and os.path.isdir(cache) and os.listdir(cache):
    return (f'loading the training step from the compilation cache in {cache}, or compiling it '
            'there if this configuration was not compiled before (tens of seconds on a CPU)')
  return ('compiling the training step: once per run, '
          + (f'kept in {cache} so a rerun loads it' if cache else 'not cached')
          + ' (tens of seconds on a CPU)')


class ThroughputMeter:
  """Images per second over a log window: the first (compiling) step and the pauses for
  checkpoints, evaluations and precise BN are left out."""

  def __init__(self, batch_size: int):
    self.batch_size = batch_size
    self.started = False
    self._start, self._steps, self._paused = 0.0, 0, 0.0

  def start(self) -> None:
    """Opens a window (after the first step, and after each log line)."""
    self.started = True
    self._start, self._steps, self._paused = time.time(), 0, 0.0

  def count_step(self) -> None:
    self._steps += 1

  def pause(self, metrics: Any, action: Callable[..., Any], *args: Any) -> Any:
    """``action(*args)``, timed as a pause once the last step is done (that step's own time is
    training time)."""
    jax.block_until_ready(metrics)
    t = time.time()
    try:
      return action(*args)
    finally:
      self._paused += time.time() - t

  def images_per_second(self) -> float:
    """The rate of the window so far (NaN before a timed step)."""
    elapsed = time.time() - self._start - self._paused
    if self._steps and elapsed > 0:
      return self._steps * self.batch_size / elapsed
    return float('nan')


class Cadence:
  """What happens at a step boundary, and when: the log line, precise BN before an evaluation,
  checkpoints, evaluations, the non-finite check, the preemption save and the end of the run."""

  def __init__(self, run: run_setup.Run, meter: ThroughputMeter):
    config = run.config
    self.run, self.meter = run, meter
    self.log_every = int(config.log_every_steps)
    self.eval_every = int(config.eval_every_steps or 0)
    self.checkpoint_every = int(config.checkpoint_every_steps or 0)
    self.precise_bn = int(config.precise_bn_batches or 0)
    self.pending: list[Any] = []  # the metrics of the steps since the last log line

  def _due(self, every: int, step: int) -> bool:
    return bool(every) and step % every == 0 and step < self.run.total_steps

  def after_step(self, step: int, state: Any, metrics: Any) -> Any:
    """The boundary actions after ``step``; returns the state (precise BN may change it)."""
    self.pending.append(metrics)
    if step % self.log_every == 0 or step == self.run.total_steps:
      self.log(step, state)
    eval_due = self._due(self.eval_every, step)
    if eval_due and self.precise_bn:
      # Before a checkpoint of the same step, so the saved state is the evaluated one.
      state = self.meter.pause(metrics, self.refresh_batch_stats, state, step)
    if self._due(self.checkpoint_every, step):
      self.meter.pause(metrics, self.save, state)
    if eval_due:
      self.meter.pause(metrics, self.run_eval, state, step)
    return state

  def log(self, step: int, state: Any) -> None:
    run = self.run
    self.check_finite(state)
    mean = _mean_metrics(run.dp, self.pending)
    self.pending = []
    images_per_s = self.meter.images_per_second()
    if math.isfinite(images_per_s):  # NaN for a window holding only the compiling step
      mean['images_per_sec'] = images_per_s
    run.writer.write(step, 'train', mean)
    run.say(console.train_line(step, run.total_steps, mean, images_per_s))
    if run.say.bar is not None:
      run.say.bar.set_postfix(loss=f'{mean["loss"]:.3f}', top1=f'{100 * mean["top1"]:.1f}%',
                              img_s=f'{images_per_s:.0f}')
    self.meter.start()

  def check_finite(self, state: Any) -> None:
    """Raises NonFiniteError when a step met a NaN/Inf (the state holds the first such step)."""
    dp, checkpointer = self.run.dp, self.run.checkpointer
    nf_step = int(dp.to_host(state.nonfinite_step))
    if nf_step >= 0:
      what = state_lib.describe_nonfinite(int(dp.to_host(state.nonfinite_what)))
      checkpointer.wait()
      last = checkpointer.latest_step()
      where = (f'the last good checkpoint is step {last} in {checkpointer.directory}'
               if last is not None else 'no checkpoint was written')
      raise NonFiniteError(
          f'non-finite {what} at step {nf_step}: the update was skipped and training stopped '
          f'without saving that state; {where} (lower learning_rate, set grad_clip_norm, or '
          'check the input data)')

  def save(self, state: Any) -> None:
    """An asynchronous checkpoint of ``state``; never of a state that met a NaN/Inf."""
    run = self.run
    self.check_finite(state)
    host = run.dp.get_state(state)
    run.checkpointer.save(host, ckpt_lib.build_metadata(
        run.config, host, num_classes=run.num_classes, total_steps=run.total_steps))

  def run_eval(self, state: Any, step: int, *, announce: bool = True) -> dict[str, float]:
    """Evaluates, records the result in the metrics, and prints it unless ``announce`` is False
    (the final evaluation prints its own line)."""
    run = self.run
    self.check_finite(state)
    result = evaluate(run.programs.eval_step, state, run.eval_iterator(), run.dp)
    run.writer.write(step, 'eval', result)
    run.writer.flush()
    if announce:
      run.say(console.eval_line(step, result))
    return result

  def refresh_batch_stats(self, state: Any, step: int) -> Any:
    """Precise BN over the batches this run trains on next (a pure function of the seed and
    ``step``, so a resumed run recomputes the same statistics)."""
    if not self.precise_bn:
      return state
    return precise_batch_stats(self.run.programs.bn_stats_step, state,
                               self.run.train_iterator(step), self.precise_bn, self.run.dp)

  def preempt(self, state: Any, step: int) -> None:
    """SIGTERM: save this step and wait for it, so a rerun resumes here."""
    self.save(state)
    self.run.checkpointer.wait()
    self.run.say(f'preempted: saved step {step} to {self.run.checkpointer.directory}; run the '
                 'same command again to resume from it')

  def finish(self, state: Any, step: int) -> tuple[Any, dict[str, float]]:
    """The last save and the final evaluation; returns (state, its evaluation)."""
    # Idempotent: precise statistics depend on the weights, not on the previous statistics.
    state = self.refresh_batch_stats(state, step)
    self.save(state)  # a no-op when this step is already saved
    final_eval = self.run_eval(state, step, announce=False)
    self.run.checkpointer.wait()
    self.run.say(console.final_line(step, final_eval, self.run.checkpointer.directory))
    return state, final_eval


# ----------------------------------------------------------------------------- device work


def evaluate(eval_fn: Callable, state: Any, batches: Iterable, dp: parallel.DataParallel
             ) -> dict[str, float]:
  """Runs ``eval_fn`` over every batch; sums stay on the device until the end."""
  totals = None
  for batch in dp.prefetch(batches, 2):
    sums = eval_fn(state, batch)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  if totals is None:
    raise UserError('the evaluation split is empty')
  host = dp.to_host(totals)
  count = int(host['count'])
  return {'loss': float(host['loss']) / max(count, 1), 'top1': int(host['top1']) / max(count, 1),
          'top5': int(host['top5']) / max(count, 1), 'num_examples': count}


def precise_batch_stats(bn_stats_step: Callable, state: Any, batches: Iterable, num_batches: int,
                        dp: parallel.DataParallel) -> Any:
  """``state`` with its BatchNorm running statistics replaced by the mean of the statistics of
  ``num_batches`` of ``batches`` (precise BN; see ``step.make_batch_norm_stats_step``).

  Only the running statistics change, and they do not enter a training step (training normalises
  with each batch's own statistics), so the weights' trajectory is the same with or without it.
  """
  if num_batches <= 0 or not state.batch_stats:
    return state
  device_batches = dp.prefetch(itertools.islice(batches, num_batches), 2)
  total, seen = None, 0
  try:
    for batch in device_batches:
      stats = bn_stats_step(state, batch)
      total = stats if total is None else jax.tree.map(jnp.add, total, stats)
      seen += 1
  finally:
    device_batches.close()
  mean = [leaf / seen for leaf in jax.tree.leaves(total)]
  return state.replace(batch_stats=jax.tree.unflatten(jax.tree.structure(state.batch_stats),
                                                      mean))


def _mean_metrics(dp: parallel.DataParallel, pending: Sequence[dict]) -> dict[str, float]:
  host = dp.to_host(list(pending))
  return {k: float(np.mean([float(m[k]) for m in host])) for k in host[0]}


# ----------------------------------------------------------------------------- preemption


class PreemptionWatcher:
  """Notices SIGTERM without a per-step host sync.

  One process: a Python SIGTERM handler sets a flag the loop reads between steps. Several
  processes: JAX's preemption sync service (``jax.distributed``) already catches SIGTERM and picks a
  step every process reaches, so all of them save the same step together.
  """

  def __init__(self, multiprocess: bool):
    self.multiprocess = multiprocess
    self.flag = False
    self._previous = None

  def _handle(self, signum, frame):  # pylint: disable=unused-argument
    self.flag = True

  def __enter__(self):
    if not self.multiprocess and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def should_stop(self, step: int) -> bool:
    if not self.multiprocess:
      return self.flag
    try:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return bool(multihost_utils.reached_preemption_sync_point(step))
    except RuntimeError:  # preemption service not running
      return False
