"""``--loop``: the whole training loop (``training.loop.train_and_evaluate``) against the bare step.

The difference is what the loop costs on top of the step (dispatch, host to device copies,
metrics, and with a real pipeline the tf.data work competing for the same host CPUs).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
import types
from typing import Any

from inception_jax.tools.bench.arguments import parse_overrides
from inception_jax.tools.bench.pipeline import pipeline_config, write_jpeg_folder
from inception_jax.tools.bench.workload import build_model, random_batch


class InMemoryPipeline:
  """The training loop's input source (``LoopOptions(pipeline=...)``) serving one host
  batch held in memory, without TensorFlow: what is left is the loop's own overhead (host to
  device copies of every batch included)."""

  def __init__(self, batch: dict[str, Any], num_classes: int, num_train_examples: int):
    self.batch, self.num_classes, self.num_train_examples = batch, num_classes, num_train_examples

  def get_dataset_info(self, config):
    return types.SimpleNamespace(
        name=config.dataset, num_classes=self.num_classes,
        num_train_examples=self.num_train_examples, num_eval_examples=len(self.batch['label']),
        class_names=[str(i) for i in range(self.num_classes)], image_channels=3,
        train_split='train', eval_split='validation', num_skipped_files=0)

  def create_train_iterator(self, config, *, start_step=0, process_index=None,
                            process_count=None):
    return itertools.repeat(self.batch)

  def create_eval_iterator(self, config, *, process_index=None, process_count=None):
    import numpy as np  # pylint: disable=g-import-not-at-top
    return iter([dict(self.batch, mask=np.ones(len(self.batch['label']), np.bool_))])


def bench_loop(args: argparse.Namespace, workdir: str, pipeline: dict[str, Any] | None,
               bare_images_per_second: float) -> dict[str, Any]:
  """The training loop (train.py's train_and_evaluate) vs the bare step, in images/s.

  ``bare_images_per_second`` is the faster of the bare step's two figures: one step at a time
  (median) and dispatched back to back (``images_per_second_pipelined``: like the loop, it does not
  wait for each step; on a GPU it is the faster).

  ``constant_batch`` feeds one in-memory batch (the loop's own overhead: dispatch, host to
  device copies, metrics); ``folder`` (unless ``--pipeline none``) also runs the tf.data
  pipeline on a synthetic JPEG folder, competing for the same host CPUs.
  """
  from inception_jax.training import loop  # pylint: disable=g-import-not-at-top
  # Two log windows of --steps steps: the loop's timer excludes the first (compiling) step, the
  # rest of the first window warms up, and the second is timed, as the bare step's steps are.
  steps = 2 * args.steps
  variants = ['constant_batch']
  if args.pipeline != 'none':
    variants.insert(0, 'folder')
  out = {}
  for variant in variants:
    source = None
    if variant == 'folder':
      if pipeline is None or pipeline['dataset'] != 'folder':
        root = write_jpeg_folder(os.path.join(workdir, 'loop_images'), args.size,
                                 max(8, -(-2 * args.batch // 4)))
        dataset, data_dir = 'folder:' + root, os.path.join(workdir, 'data')
      else:
        dataset, data_dir = pipeline['_dataset'], pipeline['_data_dir']
    else:
      dataset, data_dir = 'in_memory', os.path.join(workdir, 'data')
      source = InMemoryPipeline(random_batch(args.batch, args.size, args.num_classes,
                                             half=args.half),
                                args.num_classes, num_train_examples=steps * args.batch)
    config = pipeline_config(args, dataset, data_dir)
    config.num_train_steps = steps
    config.log_every_steps = args.steps
    config.checkpoint_every_steps = 0
    config.eval_every_steps = 0
    config.tensorboard = False
    config.num_devices = 1
    config.model_overrides.num_classes = args.num_classes
    for key, value in parse_overrides(args.set).items():
      config.model_overrides[key] = value
    run_dir = os.path.join(workdir, f'loop_{variant}')
    t = time.perf_counter()
    # --plain reaches the loop through the model (the config names no lowering).
    options = loop.LoopOptions(show_progress=False, pipeline=source,
                               model=build_model(args) if args.plain else None)
    loop.train_and_evaluate(config, run_dir, options)
    wall = time.perf_counter() - t
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
      train_lines = [json.loads(line) for line in f if '"train"' in line]
    # A window of only the compiling step (--steps 1) has no speed: metrics.jsonl leaves it out.
    ips = float(train_lines[-1].get('images_per_sec', 'nan')) if train_lines else float('nan')
    out[variant] = {'images_per_second': ips, 'wall_seconds': wall,
                    'overhead_vs_bare_step_percent':
                        100.0 * (1.0 - ips / bare_images_per_second)}
  out['bare_images_per_second'] = bare_images_per_second
  out['note'] = ('loop: train_and_evaluate with pmap on 1 device, metrics fetched at the log '
                 'boundary, state donated, batches put on the device 2 ahead by a background '
                 'thread (bfloat16 images with --half); "folder" includes the '
                 'tf.data pipeline competing for the same CPUs, "constant_batch" feeds one '
                 'in-memory batch (the loop\'s own overhead)')
  return out
