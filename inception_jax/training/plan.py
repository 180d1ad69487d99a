r"""The run plan: what a config will do, worked out before the first step and without the data.

  python -m inception_jax.tools.plan --config=configs/inception_v3_imagenet.py --devices=8
  python -m inception_jax.tools.plan --config=configs/googlenet_imagenet.py \
      --config.global_batch_size=1024 --devices=32 --images_per_second=7700 --json
  python -m inception_jax.tools.plan --config=configs/default.py --workdir=workdirs/default

Prints examples and steps per epoch, the total steps and epochs, the per-device batch (over which
batch norm computes its statistics unless ``sync_batch_norm``), the peak learning rate (the
linearly scaled rate, which a warm-up reaches at its last step) and the rate at the end of warm-up
and at 25/50/75/100 % of training, the evaluation and checkpoint cadence in epochs, the wall time
of the training steps at a given speed, and a warning when the global batch is past the batch of
the run the recipe follows (:mod:`inception_jax.config.recipes`). ``--json`` prints one JSON object
instead (keys: see :func:`make_plan`).

Every number is the training loop's own: steps per epoch as the input pipeline counts them
(``(num_train // processes) // (global_batch // processes)``, the remainder dropped), total steps
from ``optimizers.num_train_steps`` and the rates from ``optimizers.create_learning_rate_fn``, the
schedule the step uses. The rate "at a fraction f" is the one the update at step ``floor(f * T)``
uses (``T - 1``, the last update, for 1.0); "end of warm-up" is the last warm-up update's.

Split sizes without the data: ImageNet (``imagenet2012``, splits ``train`` / ``validation``) and the
bundled ``digits`` are known constants; any other TFDS dataset or image folder is read from its
prepared metadata (TFDS ``dataset_info.json``; for a folder, its file listing), and an unprepared
one is a one-line error saying to prepare it or to pass ``--num_train_examples``.

The training loop logs the same plan at start (:func:`make_plan` + :func:`format_plan`).
"""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from inception_jax.config import recipes
from inception_jax.errors import UserError


# ILSVRC 2012 as TFDS builds it (imagenet2012: train 1,281,167, validation 50,000; Russakovsky et
# al. 2015, Table 2), and the bundled digits' fixed split (inception_jax/data/digits.py).
IMAGENET_TRAIN_EXAMPLES = 1_281_167
IMAGENET_VALIDATION_EXAMPLES = 50_000
DIGITS_TRAIN_EXAMPLES = 1_437
DIGITS_VALIDATION_EXAMPLES = 360
KNOWN_SPLITS: dict[str, dict[str, int]] = {
    'imagenet2012': {'train': IMAGENET_TRAIN_EXAMPLES, 'validation': IMAGENET_VALIDATION_EXAMPLES},
    'digits': {'train': DIGITS_TRAIN_EXAMPLES, 'validation': DIGITS_VALIDATION_EXAMPLES},
}
FRACTIONS = ('0.25', '0.5', '0.75', '1.0')
_METRICS_FILE = 'metrics.jsonl'  # inception_jax.training.metrics.METRICS_FILE


def _positive_int(value: Any, what: str, *, allow_zero: bool = False) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
    raise UserError(f'{what} must be a {"non-negative" if allow_zero else "positive"} integer, '
                    f'got {value!r}')
  return value


def split_sizes(config: Any, *, num_train_examples: int | None = None,
                num_eval_examples: int | None = None) -> tuple[int, int | None, str]:
  """``(train examples, eval examples or None, where they came from)`` for ``config``'s splits.

  Given sizes win; then the known constants; then the prepared dataset's metadata through the
  input pipeline (TFDS or image folder), which names what to run when it is not prepared.
  """
  if num_train_examples is not None:
    train = _positive_int(num_train_examples, '--num_train_examples')
    evals = (None if num_eval_examples is None
             else _positive_int(num_eval_examples, '--num_eval_examples'))
    return train, evals, 'sizes given'
  name = str(config.get('dataset') or 'digits').strip()
  known = KNOWN_SPLITS.get(name.split(':')[0])  # 'imagenet2012:5.1.0' has the same splits
  train_split = config.get('train_split') or 'train'
  eval_split = config.get('eval_split') or 'validation'
  if known and train_split in known:
    evals = known.get(eval_split) if num_eval_examples is None else _positive_int(
        num_eval_examples, '--num_eval_examples')
    if evals is not None:
      return known[train_split], evals, 'known split sizes'
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  try:
    info = input_pipeline.get_dataset_info(config)
  except UserError as e:
    message = str(e).strip().splitlines()[0]
    if 'not prepared' in message:
      raise UserError(f'{message}; or plan without the data: pass --num_train_examples=N '
                      '(and --num_eval_examples=M)') from None
    raise
  where = 'image folder listing' if name.startswith(input_pipeline.FOLDER_PREFIX) else (
      'TFDS metadata')
  return info.num_train_examples, info.num_eval_examples, where


def _default_devices(config: Any) -> int:
  configured = int(config.get('num_devices') or 0)
  if configured > 0:
    return configured
  import jax  # pylint: disable=g-import-not-at-top
  return jax.device_count()


def _epochs(steps: int, steps_per_epoch: int) -> float | None:
  return steps / steps_per_epoch if steps else None


def make_plan(config: Any, num_devices: int | None = None,
              images_per_second: float | None = None, *, num_processes: int = 1,
              num_train_examples: int | None = None,
              num_eval_examples: int | None = None,
              check_model: bool = True) -> dict[str, Any]:
  """The plan of a training run as a JSON-ready dict.

  Args:
    config: a training config (configs/*.py).
    num_devices: devices over all processes; None or 0 = ``config.num_devices``, else every JAX
      device of this machine.
    images_per_second: training speed for the wall-time estimate (None = no estimate).
    num_processes: host processes (the input pipeline splits the train split between them).
    num_train_examples, num_eval_examples: split sizes for a dataset without known sizes or
      prepared metadata (the training loop passes its dataset's, so nothing is read twice).
    check_model: check ``config.model`` against the registry (False when the caller brings its
      own module, as ``training.loop`` allows).

  Returns:
    Keys ``steps_per_epoch``, ``total_steps``, ``global_batch_size``, ``peak_learning_rate``,
    ``learning_rate_at_fraction`` ({"0.25", "0.5", "0.75", "1.0"} -> rate),
    ``eval_every_epochs`` and ``checkpoint_every_epochs`` (None: only at the end / never), and
    the rest of what :func:`format_plan` prints (split sizes, epochs, per-device batch, warm-up,
    wall time, warnings).
  """
  from inception_jax.training import optimizers  # pylint: disable=g-import-not-at-top
  from inception_jax.config import schema
  schema.validate_config(config, check_model=check_model)
  num_devices = _positive_int(num_devices or _default_devices(config), 'the device count')
  num_processes = _positive_int(num_processes, 'the process count')
  if num_devices % num_processes:
    raise UserError(f'{num_devices} devices do not split over {num_processes} processes; give a '
                    'device count that is a multiple of the process count')
  batch = int(config.global_batch_size)
  for key in ('global_batch_size', 'eval_batch_size'):
    schema.local_batch_size(config, key, num_processes=num_processes, num_devices=num_devices)
  if images_per_second is not None and (
      isinstance(images_per_second, bool) or not isinstance(images_per_second, (int, float))
      or not math.isfinite(images_per_second) or images_per_second <= 0):
    raise UserError(f'--images_per_second must be a positive number, got {images_per_second!r}')

  train, evals, sizes_from = split_sizes(config, num_train_examples=num_train_examples,
                                         num_eval_examples=num_eval_examples)
  spe = schema.steps_per_epoch(config, train, num_processes)  # as the input pipeline's
  total = optimizers.num_train_steps(config, spe * batch)  # the run takes its length from here
  lr_fn = optimizers.create_learning_rate_fn(config, spe, total)
  rate = lambda step: float(lr_fn(step))  # noqa: E731
  warmup_steps = min(total, int(round(float(config.get('warmup_epochs') or 0.0) * spe)))
  at_fraction = {f: rate(min(total - 1, int(math.floor(float(f) * total)))) for f in FRACTIONS}
  eval_every = int(config.get('eval_every_steps') or 0)
  ckpt_every = int(config.get('checkpoint_every_steps') or 0)
  warnings = [w for w in (recipes.batch_warning(config),) if w]
  plan = {
      'model': config.model,
      'dataset': config.dataset,
      'num_train_examples': train,
      'num_eval_examples': evals,
      'split_sizes_from': sizes_from,
      'examples_per_epoch': spe * batch,
      'steps_per_epoch': spe,
      'total_steps': total,
      'num_epochs': total / spe,
      'global_batch_size': batch,
      'num_devices': num_devices,
      'num_processes': num_processes,
      'per_device_batch_size': batch // num_devices,
      'eval_batch_size': int(config.eval_batch_size),
      'optimizer': config.optimizer,
      'lr_schedule': config.lr_schedule,
      'base_learning_rate': float(config.learning_rate),
      'base_batch_size': int(config.base_batch_size),
      'peak_learning_rate': optimizers.scaled_learning_rate(config),
      'warmup_steps': warmup_steps,
      'learning_rate_end_of_warmup': rate(warmup_steps - 1) if warmup_steps else None,
      'learning_rate_at_fraction': at_fraction,
      'min_learning_rate_fraction': float(config.get('min_learning_rate_fraction') or 0.0),
      'eval_every_steps': eval_every,
      'eval_every_epochs': _epochs(eval_every, spe),
      'checkpoint_every_steps': ckpt_every,
      'checkpoint_every_epochs': _epochs(ckpt_every, spe),
      'recipe_source': str(config.get('recipe_source') or ''),
      'recipe_verified_batch_size': recipes.verified_batch_size(config),
      'images_per_second': float(images_per_second) if images_per_second else None,
      'train_seconds': total * batch / images_per_second if images_per_second else None,
      'epoch_seconds': spe * batch / images_per_second if images_per_second else None,
      'warnings': warnings,
  }
  return plan


def measured_images_per_second(workdir: str) -> float:
  """Median training images/s logged in ``workdir``'s metrics.jsonl (the loop's log lines)."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  path = epath.Path(workdir) / _METRICS_FILE
  try:
    lines = path.read_text().splitlines()
  except (OSError, FileNotFoundError):
    raise UserError(f'no {_METRICS_FILE} in {workdir}: train there first, or pass '
                    '--images_per_second') from None
  speeds = []
  for line in lines:
    try:
      record = json.loads(line)
    except ValueError:
      continue  # a line torn by a kill
    if not isinstance(record, dict) or record.get('kind') != 'train':
      continue
    value = record.get('images_per_sec')
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
      speeds.append(float(value))
  if not speeds:
    raise UserError(f'{path} has no training speed (images_per_sec) yet; train longer, or pass '
                    '--images_per_second')
  return statistics.median(speeds)


def _duration(seconds: float) -> str:
  if seconds < 120:
    return f'{seconds:.0f} s'
  if seconds < 2 * 3600:
    return f'{seconds / 60:.1f} min'
  if seconds < 2 * 86400:
    return f'{seconds / 3600:.1f} h'
  return f'{seconds / 86400:.1f} days'


def _cadence(steps: int, epochs: float | None, never: str) -> str:
  return f'every {steps:,} steps ({epochs:.2f} epochs)' if steps else never


def format_plan(plan: dict[str, Any]) -> str:
  """The plan as the lines ``python -m inception_jax.tools.plan`` prints and the training loop
  logs."""
  p = plan
  dropped = p['num_train_examples'] - p['examples_per_epoch']
  evals = f'{p["num_eval_examples"]:,}' if p['num_eval_examples'] is not None else '?'
  warmup = (f'warm-up {p["warmup_steps"]:,} steps to {p["learning_rate_end_of_warmup"]:.4g}'
            if p['warmup_steps'] else 'no warm-up')
  rates = ', '.join(f'{float(f):.0%} {r:.4g}' for f, r in p['learning_rate_at_fraction'].items())
  floor = (f', floor {p["min_learning_rate_fraction"]:g} x peak'
           if p['min_learning_rate_fraction'] else '')
  lines = [
      f'run plan: {p["model"]} on {p["dataset"]}',
      f'  data: {p["num_train_examples"]:,} train / {evals} eval examples '
      f'({p["split_sizes_from"]}); {p["examples_per_epoch"]:,} examples per epoch'
      + (f' (the last {dropped:,} dropped)' if dropped else ''),
      f'  batch: {p["global_batch_size"]:,} global = {p["per_device_batch_size"]:,} per device '
      f'x {p["num_devices"]} devices ({p["num_processes"]} process'
      f'{"es" if p["num_processes"] != 1 else ""})',
      f'  length: {p["total_steps"]:,} steps = {p["num_epochs"]:.2f} epochs of '
      f'{p["steps_per_epoch"]:,} steps',
      f'  learning rate: {p["optimizer"]}, peak {p["peak_learning_rate"]:.4g} '
      f'({p["base_learning_rate"]:g} x {p["global_batch_size"]} / {p["base_batch_size"]}), '
      f'{p["lr_schedule"]}{floor}; {warmup}',
      f'  learning rate at {rates} of training',
      f'  evaluation {_cadence(p["eval_every_steps"], p["eval_every_epochs"], "at the end")}; '
      'checkpoint '
      + _cadence(p['checkpoint_every_steps'], p['checkpoint_every_epochs'], 'at the end'),
  ]
  if p['images_per_second']:
    lines.append(f'  wall time of the training steps at {p["images_per_second"]:,.0f} images/s: '
                 f'{_duration(p["train_seconds"])} ({_duration(p["epoch_seconds"])} per epoch; '
                 'evaluation and checkpoints extra)')
  if p['recipe_source']:
    verified = p['recipe_verified_batch_size']
    lines.append(f'  recipe: {p["recipe_source"]}'
                 + (f"; that run's batch {verified:,}" if verified else ''))
  lines.extend(f'  {w}' for w in p['warnings'])
  return '\n'.join(lines)
