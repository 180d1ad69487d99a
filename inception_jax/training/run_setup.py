"""Preparing a run: everything between a config and the first training step.

:func:`prepare_run` validates the config, plans the run, builds (or reuses) its programs, opens
the checkpoints and either resumes from the newest good one or initialises (optionally from
``config.init_from``). Every check that can fail runs here, before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np
from etils import epath

from inception_jax.training import plan as plan_lib
from inception_jax.errors import UserError
from inception_jax.training import checkpoint as ckpt_lib
from inception_jax.training import console, integrity, model_factory, parallel
from inception_jax.config import schema
from inception_jax.training import metrics as metrics_lib
from inception_jax.training import programs as programs_lib


@dataclasses.dataclass(frozen=True)
class LoopOptions:
  """How to run a config, beyond the config itself (tests, tools, the benchmark).

  Attributes:
    num_devices: use only this many local devices; default ``config.num_devices`` (0 = all).
    model: a Flax module following the models contract, used instead of the one the config
      names (experiments, tests); ``config.model`` then only names it in checkpoint metadata.
    hooks: called as ``hook(step)`` on the host after step ``step`` is dispatched (tests, fault
      injection, profiling); they must not block on the device.
    transform_batch: ``f(step_index, host_batch) -> host_batch`` applied to each training batch
      before it goes to the devices (fault injection, debugging).
    show_progress: the tqdm bar; default on process 0 when stderr is a terminal.
    pipeline: the input source, anything with ``inception_jax.data.input_pipeline``'s
      ``get_dataset_info``, ``create_train_iterator`` and ``create_eval_iterator`` (the benchmark
      feeds in-memory batches this way, without TensorFlow); default that tf.data pipeline.
    programs: compiled programs to reuse across the runs of one process (see
      :mod:`~inception_jax.training.programs`); default none kept.
  """
  num_devices: int | None = None
  model: Any = None
  hooks: Sequence[Callable[[int], None]] = ()
  transform_batch: Callable[[int, dict], dict] | None = None
  show_progress: bool | None = None
  pipeline: Any = None
  programs: programs_lib.ProgramCache | None = None


@dataclasses.dataclass
class Run:
  """A prepared run: its parts, and where training starts. Close it (``with``) when done."""
  config: Any
  workdir: str
  options: LoopOptions
  pipeline: Any
  dp: parallel.DataParallel
  programs: programs_lib.Programs
  say: console.Printer
  checkpointer: ckpt_lib.Checkpointer
  writer: metrics_lib.MetricsWriter | None
  total_steps: int
  num_classes: int
  start_step: int = 0
  resumed_from: int | None = None
  host_state: Any = None     # the state training starts from, until taken by initial_state()
  train_batches: Any = None  # the prefetching iterator, once opened

  def initial_state(self) -> tuple[Any, Any]:
    """(state, rng) on the devices; the host copy is dropped to free its memory."""
    state, rng = self.dp.put_state(self.host_state), self.dp.put_replicated(self.host_state.rng)
    self.host_state = None
    return state, rng

  def train_iterator(self, start_step: int) -> Iterator[dict]:
    """This process's host batches from ``start_step``: a pure function of (seed, step)."""
    return self.pipeline.create_train_iterator(
        self.config, start_step=start_step, process_index=self.dp.process_index,
        process_count=self.dp.process_count)

  def eval_iterator(self) -> Iterator[dict]:
    return self.pipeline.create_eval_iterator(
        self.config, process_index=self.dp.process_index, process_count=self.dp.process_count)

  def open_train_batches(self) -> Iterator[Any]:
    """Training batches from ``start_step`` on the devices, two ahead (a background thread)."""
    batches = self.train_iterator(self.start_step)
    transform = self.options.transform_batch
    if transform is not None:
      batches = (transform(i, b) for i, b in zip(itertools.count(self.start_step), batches))
    self.train_batches = self.dp.prefetch(batches, 2)
    return self.train_batches

  def close(self) -> None:
    if self.train_batches is not None:
      self.train_batches.close()  # stops the prefetch thread and frees its batches
    self.checkpointer.close()
    if self.writer is not None:
      self.writer.close()

  def __enter__(self) -> Run:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


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


def prepare_run(config: Any, workdir: str, options: LoopOptions) -> Run:
  """Checks, plans and builds the run of ``config`` in ``workdir``; resumes or initialises it."""
  # Imported here: TensorFlow (behind the input pipeline) is slow to import and users of the
  # step alone should not pay for it.
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  pipeline = options.pipeline or input_pipeline
  own_model = options.model is None
  schema.validate_config(config, check_model=own_model)
  workdir = normalize_workdir(workdir)
  check_workdir_writable(workdir)
  dp = parallel.DataParallel(config.parallel, options.num_devices or config.num_devices or None)
  info = pipeline.get_dataset_info(config)
  # The plan checks that the batches split over the devices and fit the train split.
  run_plan = plan_lib.make_plan(config, dp.num_devices, None, num_processes=dp.process_count,
                                num_train_examples=info.num_train_examples,
                                num_eval_examples=info.num_eval_examples, check_model=own_model)
  model = (model_factory.build_model(config, num_classes=info.num_classes) if own_model
           else options.model)
  programs = programs_lib.build_programs(
      config, dp, model, steps_per_epoch=run_plan['steps_per_epoch'],
      total_steps=run_plan['total_steps'], cache=options.programs)
  num_classes = int(programs.model.num_classes)
  say = console.Printer(jax.process_index() == 0)
  for line in plan_lib.format_plan(run_plan).splitlines():
    say(line)
  say(f'  devices: {dp}; {num_classes} classes')
  integrity.check_free_space(ckpt_lib.checkpoint_dir(workdir), programs.abstract_state)
  run = Run(config=config, workdir=workdir, options=options, pipeline=pipeline, dp=dp,
            programs=programs, say=say, total_steps=run_plan['total_steps'],
            num_classes=num_classes, writer=None,
            checkpointer=ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir),
                                               keep=int(config.keep_checkpoints)))
  try:
    _resume_or_initialise(run)
    run.writer = metrics_lib.MetricsWriter(workdir, enabled=say.enabled,
                                           tensorboard=bool(config.tensorboard))
    run.writer.truncate_after(run.start_step)
    if say.enabled:
      (epath.Path(workdir) / 'config.json').write_text(
          config.to_json_best_effort(indent=2, sort_keys=True) + '\n')
  except BaseException:
    run.close()
    raise
  return run


def _resume_or_initialise(run: Run) -> None:
  """The newest checkpoint that verifies (damaged newer ones are moved aside, see
  training/integrity.py), else a fresh state (from ``init_from`` when set)."""
  config, programs, say = run.config, run.programs, run.say
  current_meta = ckpt_lib.run_metadata(config, programs.abstract_state,
                                       num_classes=run.num_classes, total_steps=run.total_steps)
  found = integrity.find_resume_point(run.checkpointer, programs.abstract_state, current_meta,
                                      workdir=run.workdir, say=say)
  if found is not None:
    for warning in found.warnings:
      say(f'warning: {warning}')
    run.host_state = found.state
    run.resumed_from = int(found.state.step)
    say(f'resuming from the checkpoint at step {run.resumed_from} in '
        f'{run.checkpointer.directory}')
  else:
    run.host_state = programs.init_fn(seed=config.seed)
    if config.init_from:
      run.host_state = _init_from(config.init_from, run.host_state, say)
  run.start_step = int(run.host_state.step)


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
