r"""How fast this host prepares training and evaluation images, total and per core.

  python -m inception_jax.tools.bench --pipeline-only --config=configs/inception_v3_imagenet.py \
      --config.data_dir=D [--batches 20] [--rounds 3] [--accelerator-rate IMG_PER_S] [--json F]

runs the config's own tf.data input pipeline (decode, crop, resize, flip, batch; uint8 pixels, or
normalised floats with ``uint8_images=False``) with no model, on a prepared dataset (ImageNet, the
rehearsal tarballs of ``inception_jax.data.fake_imagenet``, or a folder), and reports images/s for
the training and the evaluation preprocessing. Per core is the total over the cores this process
may use (its CPU affinity): tf.data spreads decoding over all of them, so ``taskset -c 0`` gives
the one-core figure and the ratio shows how well it scales. An accelerator needs ``step rate /
per-core rate`` host cores to stay fed: ``--accelerator-rate`` reports that figure.

Each split is timed against its decode-only floor (``decode_floor``: the same files, only the
windows the recipe decodes), interleaved in the same run: ``--rounds`` rounds, each timing
``--batches`` batches of the pipeline and of the floor (ABBA order), so load from other jobs
falls on both. ``fraction_of_decode_only`` is the pipeline's rate over the floor's.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from inception_jax import errors
from inception_jax.config import loading as config_loading
from inception_jax.errors import UserError
from inception_jax.tools.bench import machine

# The repository's configs/, beside inception_jax/ (this file is inception_jax/tools/bench/*.py).
_DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    'configs', 'inception_v3_imagenet.py')


def _real_examples(batch: dict[str, Any]) -> int:
  """Examples in ``batch`` that are data: evaluation pads its last batch with masked ones."""
  mask = batch.get('mask')
  return int(np.sum(mask)) if mask is not None else len(batch['label'])


def time_batches(make_iterator: Callable[[], Iterator[dict[str, Any]]], batches: int,
                 warmup: int, clock: Callable[[], float] = time.perf_counter
                 ) -> dict[str, float]:
  """Images/s over ``batches`` batches, each taken from an iterator past its first ``warmup``
  batches (tf.data's autotuning and prefetch settle in those).

  An iterator that ends (one evaluation pass) is started again and warmed up again outside the
  timed span, so the figure is the steady rate, not pipeline start-up. Padded evaluation
  examples (``mask`` False) are not counted as images.
  """
  images = timed = 0
  seconds = 0.0
  while timed < batches:
    iterator = make_iterator()
    warmed = sum(1 for _ in itertools.islice(iterator, warmup))
    timed_this_pass = 0
    start = clock()
    for batch in iterator:
      images += _real_examples(batch)
      timed += 1
      timed_this_pass += 1
      if timed == batches:
        break
    seconds += clock() - start
    if not timed_this_pass:
      raise UserError(f'one pass of this pipeline has only {warmed} batch(es), all of them '
                      f'untimed warm-up (--warmup {warmup}); lower --warmup, or use a smaller '
                      '--config.eval_batch_size so that a pass has more batches')
  cores = machine.cpu_count()  # the affinity mask, what tf.data sizes its pools by
  return {'images_per_second': images / seconds,
          'images_per_second_per_core': images / seconds / cores,
          'images': images, 'seconds': seconds, 'cores': cores}


def interleaved(arms: dict[str, Callable[[], Iterator[dict[str, Any]]]], batches: int,
                warmup: int, rounds: int, clock: Callable[[], float] = time.perf_counter
                ) -> dict[str, dict[str, Any]]:
  """:func:`time_batches` of every arm in turn, ``rounds`` times (even rounds in order, odd ones
  reversed), so drifting load falls on all arms alike. Each arm's figures sum its rounds; its
  ``round_images_per_second`` shows the spread."""
  names = list(arms)
  runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
  for r in range(rounds):
    for name in (names if r % 2 == 0 else names[::-1]):
      runs[name].append(time_batches(arms[name], batches, warmup, clock))
  out = {}
  for name, parts in runs.items():
    images = sum(p['images'] for p in parts)
    seconds = sum(p['seconds'] for p in parts)
    cores = parts[0]['cores']
    out[name] = {'images_per_second': images / seconds,
                 'images_per_second_per_core': images / seconds / cores,
                 'images': images, 'seconds': seconds, 'cores': cores,
                 'round_images_per_second': [p['images_per_second'] for p in parts]}
  return out


def against_floor(pipeline: dict[str, Any], floor: dict[str, Any],
                  accelerator_rate: float | None) -> dict[str, Any]:
  """One split's pipeline figures with its decode-only floor, the fraction of the floor it
  reaches, and the host cores an accelerator at ``accelerator_rate`` img/s needs (both at the
  pipeline's and at the floor's per-core rate; None without a rate)."""
  def cores(r):
    return accelerator_rate / r['images_per_second_per_core'] if accelerator_rate else None
  return {**pipeline, 'decode_only': {**floor, 'cores_per_accelerator': cores(floor)},
          'fraction_of_decode_only': pipeline['images_per_second'] / floor['images_per_second'],
          'cores_per_accelerator': cores(pipeline)}


def measure(config: Any, batches: int = 20, warmup: int = 3, rounds: int = 3,
            accelerator_rate: float | None = None) -> dict[str, Any]:
  """Training and evaluation preprocessing rates of ``config``'s pipeline on this host, each
  against its decode-only floor, interleaved."""
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from inception_jax.tools.bench import decode_floor  # pylint: disable=g-import-not-at-top
  info = input_pipeline.get_dataset_info(config)
  train = interleaved({
      'pipeline': lambda: input_pipeline.create_train_iterator(
          config, process_index=0, process_count=1),
      'decode_only': lambda: decode_floor.train_iterator(config)}, batches, warmup, rounds)
  evaluation = interleaved({
      'pipeline': lambda: input_pipeline.create_eval_iterator(
          config, process_index=0, process_count=1),
      'decode_only': lambda: decode_floor.eval_iterator(config)}, batches, warmup, rounds)
  train = against_floor(train['pipeline'], train['decode_only'], accelerator_rate)
  evaluation = against_floor(evaluation['pipeline'], evaluation['decode_only'], accelerator_rate)
  return {
      'dataset': info.name, 'image_size': int(config.image_size),
      'augment': config.augment, 'normalization': config.normalization,
      'crop_area_range': list(config.crop_area_range),
      'half_precision': bool(config.half_precision),
      'global_batch_size': int(config.global_batch_size),
      'eval_batch_size': int(config.eval_batch_size),
      'num_train_examples': info.num_train_examples, 'num_eval_examples': info.num_eval_examples,
      'cpu': machine.cpu_model(), 'batches': batches, 'warmup': warmup, 'rounds': rounds,
      'decode_only_definition': decode_floor.DEFINITION,
      'accelerator_images_per_second': accelerator_rate,
      # The training rate is the one that must keep up with the accelerator.
      'images_per_second': train['images_per_second'],
      'images_per_second_per_core': train['images_per_second_per_core'],
      'fraction_of_decode_only': train['fraction_of_decode_only'],
      'cores_per_accelerator': train['cores_per_accelerator'],
      'cores': train['cores'], 'train': train, 'eval': evaluation,
  }


def format_report(report: dict[str, Any]) -> str:
  """The figures of :func:`measure` as lines for a reader: total and per core, each split, and
  each against its decode-only floor."""
  lines = [f'input pipeline alone: {report["dataset"]} at {report["image_size"]} px, '
           f'{report["cores"]} core(s) of {report["cpu"]}; {report["rounds"]} interleaved '
           f'round(s) of {report["batches"]} batches']
  for kind in ('train', 'eval'):
    r = report[kind]
    floor = r['decode_only']
    lines.append(f'  {kind:5s}: {r["images_per_second"]:8.1f} img/s total, '
                 f'{r["images_per_second_per_core"]:7.1f} img/s per core '
                 f'({r["images"]} images in {r["seconds"]:.1f} s)')
    lines.append(f'         decode only {floor["images_per_second"]:8.1f} img/s: pipeline at '
                 f'{100 * r["fraction_of_decode_only"]:.0f} % of it')
    if r['cores_per_accelerator'] is not None:
      lines.append(f'         at {report["accelerator_images_per_second"]:g} img/s: '
                   f'{r["cores_per_accelerator"]:.1f} host cores '
                   f'({floor["cores_per_accelerator"]:.1f} at the decode-only rate)')
  return '\n'.join(lines)


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  global _CONFIG, _BATCHES, _WARMUP, _ROUNDS, _RATE, _JSON
  _CONFIG = config_loading.define_config_flag(
      _DEFAULT_CONFIG, 'Training config file (configs/*.py[:variant]).',
      'python -m inception_jax.tools.bench --pipeline-only')
  _BATCHES = flags.DEFINE_integer('batches', 20, 'Timed batches per split, pipeline and '
                                  'decode-only floor each, per round.', lower_bound=1)
  _ROUNDS = flags.DEFINE_integer('rounds', 3, 'Interleaved rounds of pipeline and floor.',
                                 lower_bound=1)
  _RATE = flags.DEFINE_float('accelerator-rate', None, 'Images/s one accelerator trains at: '
                             'reports the host cores it needs.', lower_bound=0.0)
  _WARMUP = flags.DEFINE_integer('warmup', 3, 'Untimed batches first.', lower_bound=0)
  _JSON = flags.DEFINE_string('json', None, 'Also write the figures to this file as '
                              '{"pipeline": {...}}.')


def _main(argv: Sequence[str]) -> dict[str, Any]:
  config_loading.reject_positional(argv)
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
  config = config_loading.config_from_flag(_CONFIG)
  schema.validate_config(config, check_model=False)
  report = measure(config, _BATCHES.value, _WARMUP.value, _ROUNDS.value, _RATE.value)
  print(format_report(report), flush=True)
  if _JSON.value:
    os.makedirs(os.path.dirname(os.path.abspath(_JSON.value)), exist_ok=True)
    with open(_JSON.value, 'w') as f:
      json.dump({'pipeline': report, 'command': ' '.join(sys.argv)}, f, indent=2, sort_keys=True)
    print(f'wrote {_JSON.value}')
  return report


def main(argv: Sequence[str]) -> int:
  """``python -m inception_jax.tools.bench --pipeline-only ...``: ``argv`` without the program
  name."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from absl import app  # pylint: disable=g-import-not-at-top
  sys.argv = [f'{sys.argv[0]} --pipeline-only'] + list(argv)
  _define_flags()
  config_loading.quiet_logging_unless_verbose(argv)
  # app.run exits with main's return value: None, so a report dict is not printed as an error.
  app.run(lambda a: errors.run_cli(lambda: _main(a)) and None,
          flags_parser=errors.parse_absl_flags)
  return 0
