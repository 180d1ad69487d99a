"""The training loop: set-up, progress, logging, evaluation and the checkpoint cadence.

``train_and_evaluate(config, workdir)`` is the whole program behind ``train.py``. It validates the
config, builds the model, optimiser and data-parallel steps, resumes from the latest checkpoint in
``workdir`` (or initialises, optionally from ``config.init_from``), trains with a progress bar, logs
and evaluates on cadence, saves checkpoints asynchronously, and returns a :class:`TrainResult`.

Performance: the loop never waits for the device between log boundaries. Each step's metrics stay
on the device and are fetched every ``log_every_steps``; the state's buffers are donated to the
step; a background thread puts batches on the devices two steps ahead, and with
``half_precision`` the images travel in bfloat16 (half the bytes of float32).

Faults: a SIGTERM (preemption) saves the current step, waits for it to commit and returns with
``preempted=True`` (train.py then exits 143). A non-finite loss or gradient, noticed at the next log
or checkpoint boundary, raises :class:`NonFiniteError` naming the step and the metric; the bad state
is never saved, so the last checkpoint stays the last good one. At resume, a damaged newest checkpoint
is moved aside and the newest good one used (:mod:`~inception_jax.training.integrity`); a save that
fails (disk full) raises :class:`~inception_jax.training.checkpoint.CheckpointWriteError`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from inception_jax import models
from inception_jax import plan as plan_lib
from inception_jax.errors import UserError
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import metrics as metrics_lib
from inception_jax.training import integrity, optimizers, parallel, schema
from inception_jax.training import state as state_lib
from inception_jax.training import step as step_lib

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


def normalize_workdir(workdir: str) -> str:
  """Absolute local path, or a cloud path (``gs://...``) as given."""
  workdir = os.fspath(workdir)
  return workdir if '://' in workdir else os.path.abspath(workdir)


def check_workdir_writable(workdir: str) -> None:
  """Creates ``workdir`` and proves it writable now, rather than at the first checkpoint."""
  try:
    path = epath.Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f'.write_test.{os.getpid()}'
    probe.write_text('ok')
    probe.unlink()
  except OSError as e:
    raise UserError(f'workdir {workdir!r} is not writable ({e.strerror or e}); choose another '
                    '--workdir') from None


def build_model(config: Any, num_classes: int):
  """``models.create(config.model, num_classes=..., **config.model_overrides)``, bf16 if asked."""
  overrides = schema.model_overrides(config)
  overrides.setdefault('num_classes', num_classes)
  if overrides['num_classes'] < num_classes:
    raise UserError(f'model_overrides.num_classes={overrides["num_classes"]} is smaller than the '
                    f'{num_classes} classes of dataset {config.dataset!r}')
  if config.get('half_precision'):
    overrides.setdefault('dtype', jnp.bfloat16)
  if config.get('sync_batch_norm'):
    overrides['bn_axis_name'] = step_lib.AXIS_NAME
  model = models.create(config.model, **overrides)
  models.check_input_size(model, config.image_size, f'image_size={config.image_size}',
                          config.model, fix='raise config.image_size')
  return model


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


# ----------------------------------------------------------------------------- the loop


def _fmt_train(step, total, m, images_per_s):
  return (f'step {step}/{total}: loss {m["loss"]:.4f} (main {m["main_loss"]:.4f}, aux '
          f'{m["aux_loss"]:.4f})  top1 {100 * m["top1"]:.2f}%  top5 {100 * m["top5"]:.2f}%  '
          f'lr {m["learning_rate"]:.4g}  |g| {m["grad_norm"]:.3g}  {images_per_s:.1f} img/s')


def _fmt_eval(step, m):
  return (f'eval at step {step}: loss {m["loss"]:.4f}  top1 {100 * m["top1"]:.2f}%  '
          f'top5 {100 * m["top5"]:.2f}%  ({m["num_examples"]} examples)')


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


def precise_batch_stats(programs: Programs, state: Any, batches: Iterable, num_batches: int,
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
      stats = programs.bn_stats_step(state, batch)
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


@dataclasses.dataclass(frozen=True)
class Programs:
  """The model and the compiled functions of a run; reused across runs with the same program."""
  model: Any
  tx: Any
  learning_rate_fn: Callable
  init_fn: Callable          # seed -> fresh TrainState (host numpy)
  abstract_state: Any        # the TrainState's shapes and dtypes (for restoring)
  train_step: Callable       # DataParallel-mapped train_step, state donated
  eval_step: Callable        # DataParallel-mapped eval_step
  bn_stats_step: Callable    # DataParallel-mapped BatchNorm statistics of one batch (precise BN)


# Settings that do not change the compiled programs (so a rerun in this process reuses them).
_NOT_IN_PROGRAM = ('workdir', 'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                   'keep_checkpoints', 'init_from', 'tensorboard', 'data_dir', 'shuffle_buffer',
                   'seed', 'eval_batch_size', 'precise_bn_batches')
_PROGRAM_CACHE: 'collections.OrderedDict[Any, Programs]' = collections.OrderedDict()
_PROGRAM_CACHE_SIZE = 4


def build_programs(config: Any, dp: parallel.DataParallel, *, num_classes: int,
                   steps_per_epoch: int, total_steps: int, model: Any = None) -> Programs:
  """Model, optimiser and the data-parallel steps for ``config``, from a small in-process cache.

  jax.jit caches compiled code per function object, so building new closures for every run would
  recompile; runs in one process (tests, sweeps, a resumed run in a notebook) with the same program
  share one ``Programs``.
  """
  model = model if model is not None else build_model(config, num_classes)
  program_config = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_PROGRAM}
  key = (json.dumps(program_config, sort_keys=True, default=repr), repr(model), dp.mode,
         tuple(d.id for d in dp.devices), steps_per_epoch, total_steps)
  if key in _PROGRAM_CACHE:
    _PROGRAM_CACHE.move_to_end(key)
    return _PROGRAM_CACHE[key]
  lr_fn = optimizers.create_learning_rate_fn(config, steps_per_epoch, total_steps)
  tx = optimizers.create_optimizer(config, lr_fn)
  ema_decay = float(config.get('ema_decay', 0.0))
  init_fn = state_lib.make_init_fn(model, tx, image_size=config.image_size, ema=ema_decay > 0)
  # Tracing the model here also raises the model's own UserErrors (e.g. an image too small)
  # before anything is compiled.
  abstract_state = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
  programs = Programs(
      model=model, tx=tx, learning_rate_fn=lr_fn,
      init_fn=functools.partial(state_lib.create_train_state, model, tx,
                                image_size=config.image_size, ema=ema_decay > 0),
      abstract_state=abstract_state,
      train_step=dp.train_step(step_lib.make_train_step(
          model, tx, lr_fn, aux_weight=float(config.aux_weight),
          label_smoothing=float(config.get('label_smoothing', 0.0)), ema_decay=ema_decay,
          axis_name=dp.axis_name)),
      eval_step=dp.eval_step(step_lib.make_eval_step(model, axis_name=dp.axis_name)),
      # Compiled on first use only: runs without precise BN never pay for it.
      bn_stats_step=dp.eval_step(step_lib.make_batch_norm_stats_step(
          model, momentum=getattr(model, 'bn_momentum', models.BN_MOMENTUM),
          axis_name=dp.axis_name)))
  _PROGRAM_CACHE[key] = programs
  while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
    _PROGRAM_CACHE.popitem(last=False)
  return programs


def train_and_evaluate(config: Any, workdir: str, *, num_devices: int | None = None,
                       model: Any = None,
                       hooks: Sequence[Callable[[int], None]] = (),
                       transform_batch: Callable[[int, dict], dict] | None = None,
                       show_progress: bool | None = None,
                       pipeline: Any = None) -> TrainResult:
  """Trains (or resumes) ``config`` in ``workdir`` and evaluates; see the module docstring.

  Args:
    config: an ml_collections ConfigDict with the ARCHITECTURE.md fields (``schema.base_config``).
    workdir: checkpoints, TensorBoard events, config.json and metrics.jsonl go here.
    num_devices: use only this many local devices; default ``config.num_devices`` (0 = all).
    model: a Flax module following the models contract, used instead of
      ``models.create(config.model, ...)`` (experiments, tests); ``config.model`` then only names
      it in checkpoint metadata.
    hooks: called as ``hook(step)`` on the host after step ``step`` is dispatched (tests, fault
      injection, profiling); they must not block on the device.
    transform_batch: ``f(step_index, host_batch) -> host_batch`` applied to each training batch
      before it goes to the devices (fault injection, debugging).
    show_progress: the tqdm bar; default on process 0 when stderr is a terminal.
    pipeline: the input source, anything with ``inception_jax.data.input_pipeline``'s
      ``get_dataset_info``, ``steps_per_epoch``, ``create_train_iterator`` and
      ``create_eval_iterator`` (the benchmark feeds in-memory batches this way, without
      TensorFlow); default that tf.data pipeline.
  """
  if pipeline is None:
    # Imported here: TensorFlow (behind the input pipeline) is slow to import and users of the
    # step alone should not pay for it.
    from inception_jax.data import input_pipeline as pipeline  # pylint: disable=g-import-not-at-top

  schema.validate_config(config, check_model=model is None)
  workdir = normalize_workdir(workdir)
  is_main = jax.process_index() == 0
  check_workdir_writable(workdir)

  dp = parallel.DataParallel(config.parallel, num_devices or config.get('num_devices') or None)
  dp.local_batch_size(config.global_batch_size, 'global_batch_size')
  dp.local_batch_size(config.eval_batch_size, 'eval_batch_size')
  info = pipeline.get_dataset_info(config)
  spe = pipeline.steps_per_epoch(config, process_count=dp.process_count)
  if spe <= 0:
    raise UserError(f'global_batch_size={config.global_batch_size} is larger than the train split '
                    f'({info.num_train_examples} examples); use a smaller batch')
  total_steps = optimizers.num_train_steps(config, spe * config.global_batch_size)
  programs = build_programs(config, dp, num_classes=info.num_classes, steps_per_epoch=spe,
                            total_steps=total_steps, model=model)
  num_classes = int(programs.model.num_classes)

  say = _Printer(is_main)
  run_plan = plan_lib.make_plan(config, dp.num_devices, None, num_processes=dp.process_count,
                                num_train_examples=info.num_train_examples,
                                num_eval_examples=info.num_eval_examples,
                                check_model=model is None)
  for line in plan_lib.format_plan(run_plan).splitlines():
    say(line)
  say(f'  devices: {dp}; {num_classes} classes')

  integrity.check_free_space(ckpt_lib.checkpoint_dir(workdir), programs.abstract_state)
  checkpointer = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir),
                                       keep=int(config.keep_checkpoints))
  writer = None
  train_batches = None
  try:
    current_meta = ckpt_lib.run_metadata(config, programs.abstract_state, num_classes=num_classes,
                                         total_steps=total_steps)
    # The newest step that verifies; damaged newer ones are moved aside (training/integrity.py).
    found = integrity.find_resume_point(checkpointer, programs.abstract_state, current_meta,
                                        workdir=workdir, say=say)
    resumed_from = None
    if found is not None:
      for warning in found.warnings:
        say(f'warning: {warning}')
      host_state = found.state
      resumed_from = int(host_state.step)
      say(f'resuming from the checkpoint at step {resumed_from} in {checkpointer.directory}')
    else:
      host_state = programs.init_fn(seed=config.seed)
      if config.get('init_from'):
        host_state = _init_from(config.init_from, host_state, say)

    start_step = int(host_state.step)
    writer = metrics_lib.MetricsWriter(workdir, enabled=is_main,
                                       tensorboard=bool(config.get('tensorboard', True)))
    writer.truncate_after(start_step)
    if is_main:
      (epath.Path(workdir) / 'config.json').write_text(
          config.to_json_best_effort(indent=2, sort_keys=True) + '\n')

    precise_bn = int(config.get('precise_bn_batches') or 0)

    def refresh_batch_stats(state, step):
      if not precise_bn:
        return state
      # The batches this run trains on next: a pure function of (seed, step), so a resumed run
      # recomputes the same statistics.
      batches = pipeline.create_train_iterator(
          config, start_step=step, process_index=dp.process_index,
          process_count=dp.process_count)
      return precise_batch_stats(programs, state, batches, precise_bn, dp)

    def run_eval(state, step):
      batches = pipeline.create_eval_iterator(
          config, process_index=dp.process_index, process_count=dp.process_count)
      result = evaluate(programs.eval_step, state, batches, dp)
      writer.write(step, 'eval', result)
      writer.flush()
      say(_fmt_eval(step, result))
      return result

    def check_finite(state):
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

    def save(state):
      check_finite(state)
      host = dp.get_state(state)
      checkpointer.save(host, ckpt_lib.build_metadata(
          config, host, num_classes=num_classes, total_steps=total_steps))

    state = dp.put_state(host_state)
    rng = dp.put_replicated(host_state.rng)
    del host_state
    step = start_step
    preempted = False

    if step < total_steps:
      host_batches = pipeline.create_train_iterator(
          config, start_step=start_step, process_index=dp.process_index,
          process_count=dp.process_count)
      if transform_batch is not None:
        host_batches = (transform_batch(i, b)
                        for i, b in zip(itertools.count(start_step), host_batches))
      train_batches = dp.prefetch(host_batches, 2)
      log_every = int(config.log_every_steps)
      ckpt_every = int(config.checkpoint_every_steps or 0)
      eval_every = int(config.eval_every_steps or 0)
      progress = None  # created after the first step, so compile time does not skew the ETA
      cache = jax.config.jax_compilation_cache_dir
      say(f'compiling the training step: once per run, '
          + (f'kept in {cache} so a rerun loads it' if cache else 'not cached')
          + ' (tens of seconds on a CPU)')
      pending = []
      window_start, window_steps, paused = None, 0, 0.0
      loop_start = time.time()
      with PreemptionWatcher(dp.process_count > 1) as watcher:
        while step < total_steps:
          if watcher.should_stop(step):
            save(state)
            checkpointer.wait()
            preempted = True
            say(f'preempted: saved step {step} to {checkpointer.directory}; run the same command '
                'again to resume from it')
            break
          batch = next(train_batches)
          state, metrics = programs.train_step(state, batch, rng)
          pending.append(metrics)
          step += 1
          window_steps += 1
          for hook in hooks:
            hook(step)
          if window_start is None:
            # Once: wait for the first step so its compile time is reported, not averaged in.
            jax.block_until_ready(metrics)
            say(f'first step (compilation included) took {time.time() - loop_start:.1f} s')
            window_start, window_steps = time.time(), 0
            progress = _progress(show_progress, is_main, total_steps, step)
            say.bar = progress
          elif progress is not None:
            progress.update(1)
          if step % log_every == 0 or step == total_steps:
            check_finite(state)
            mean = _mean_metrics(dp, pending)
            pending = []
            elapsed = time.time() - window_start - paused
            images_per_s = (window_steps * config.global_batch_size / elapsed
                            if window_steps and elapsed > 0 else float('nan'))
            mean['images_per_sec'] = images_per_s
            writer.write(step, 'train', mean)
            say(_fmt_train(step, total_steps, mean, images_per_s))
            if progress is not None:
              progress.set_postfix(loss=f'{mean["loss"]:.3f}', top1=f'{100 * mean["top1"]:.1f}%',
                                   img_s=f'{images_per_s:.0f}')
            window_start, window_steps, paused = time.time(), 0, 0.0
          eval_due = eval_every and step % eval_every == 0 and step < total_steps
          if eval_due and precise_bn:
            # Before a checkpoint of the same step, so the saved state is the evaluated one.
            jax.block_until_ready(metrics)
            t = time.time()
            state = refresh_batch_stats(state, step)
            paused += time.time() - t
          if ckpt_every and step % ckpt_every == 0 and step < total_steps:
            jax.block_until_ready(metrics)  # the step's time is training time, not pause
            t = time.time()
            save(state)
            paused += time.time() - t
          if eval_due:
            jax.block_until_ready(metrics)
            t = time.time()
            check_finite(state)
            run_eval(state, step)
            paused += time.time() - t
      if progress is not None:
        progress.close()
        say.bar = None
      train_batches.close()  # stops the prefetch thread and frees its batches before evaluating

    final_eval = None
    if not preempted:
      # Idempotent: precise statistics depend on the weights, not on the previous statistics.
      state = refresh_batch_stats(state, step)
      save(state)  # a no-op when this step is already saved
      final_eval = run_eval(state, step)
      checkpointer.wait()
      say(f'final evaluation at step {step}: top1 {100 * final_eval["top1"]:.2f}%  top5 '
          f'{100 * final_eval["top5"]:.2f}%  loss {final_eval["loss"]:.4f}  '
          f'({final_eval["num_examples"]} examples); checkpoints in {checkpointer.directory}')
    return TrainResult(workdir=workdir, step=step, total_steps=total_steps,
                       state=dp.get_state(state), final_eval=final_eval, preempted=preempted,
                       resumed_from=resumed_from)
  finally:
    if train_batches is not None:
      train_batches.close()
    checkpointer.close()
    if writer is not None:
      writer.close()


def _init_from(path: str, host_state: Any, say: Callable[[str], None]) -> Any:
  """Loads params (+ BatchNorm statistics) from another run for fine-tuning."""
  params, batch_stats, meta = ckpt_lib.load_pretrained(path)
  new_params, loaded, kept = ckpt_lib.merge_pretrained(host_state.params, params)
  if not loaded:
    raise UserError(f'init_from={path!r} ({meta.get("model")}) shares no parameter of matching '
                    'shape with this model')
  new_stats = host_state.batch_stats
  if host_state.batch_stats and batch_stats:
    new_stats, _, _ = ckpt_lib.merge_pretrained(host_state.batch_stats, batch_stats)
  say(f'init_from {path}: loaded {len(loaded)} parameter arrays from {meta.get("model")} at step '
      f'{meta.get("step")}' + (f'; kept {len(kept)} at initialisation ({", ".join(kept[:4])}'
                               f'{"..." if len(kept) > 4 else ""})' if kept else ''))
  ema = jax.tree.map(np.copy, new_params) if host_state.ema_params else host_state.ema_params
  return host_state.replace(params=new_params, batch_stats=new_stats, ema_params=ema)


class _Printer:
  """Process-0 console output that does not break the progress bar."""

  def __init__(self, enabled: bool):
    self.enabled = enabled
    self.bar = None

  def __call__(self, message: str) -> None:
    if not self.enabled:
      return
    if self.bar is not None:
      self.bar.write(message)
    else:
      print(message, flush=True)


def _progress(show: bool | None, is_main: bool, total: int, initial: int):
  if not is_main or show is False:
    return None
  if show is None and not sys.stderr.isatty():
    return None
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True, mininterval=0.5,
              smoothing=0.1, file=sys.stderr)
