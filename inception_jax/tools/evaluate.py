r"""``python -m inception_jax.tools.evaluate``: top-1 / top-5 of a checkpoint on a whole split.

  python -m inception_jax.tools.evaluate --config=configs/default.py --checkpoint=workdirs/default
  python -m inception_jax.tools.evaluate --config=configs/googlenet_imagenet.py \
      --checkpoint=converted/googlenet --crops=144 --config.data_dir=/data/tfds --json=eval.json

Multi-process (one process per host, as train.py): on a Cloud TPU pod slice, SLURM or Open MPI the
processes find each other automatically; elsewhere start every process with the same flags plus
``--coordinator_address=HOST:PORT --num_processes=N --process_id=I``. Each reads its share of the
split; process 0 prints the result and writes ``--json``.

What is evaluated and how: :mod:`inception_jax.inference.evaluation`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from inception_jax import errors
from inception_jax.config import loading as config_loading
from inception_jax.errors import UserError
from inception_jax.inference.evaluation import evaluate, format_result, peer_failure_message
from inception_jax.inference.evaluation import write_json

_DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    'configs', 'default.py')


def _define_flags() -> None:
  """The flags; config_flags applies ``--config.KEY=VALUE`` while parsing, so a bad key or value
  becomes one line (as in train.py)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  global _CONFIG, _CHECKPOINT, _CROPS, _BATCH_SIZE, _IMAGE_SIZE, _JSON, _EMA
  global _PROCESSES
  _CONFIG = config_loading.define_config_flag(
      _DEFAULT_CONFIG if os.path.exists(_DEFAULT_CONFIG) else None,
      'Config file (configs/*.py): the dataset, eval_split, eval_crop_fraction, '
      'eval_batch_size.', 'python -m inception_jax.tools.evaluate')
  _CHECKPOINT = flags.DEFINE_string(
      'checkpoint', None, 'Training --workdir, converted --out directory, or one of their '
      'checkpoints/<step> directories.')
  _CROPS = flags.DEFINE_integer('crops', 1, 'Views per image: 1 (centre), 10 (corners + centre, '
                                'mirrored) or 144 (GoogLeNet paper, Sec. 7); without the mirrored '
                                'half (5, 72) when the config has random_flip=False.')
  _BATCH_SIZE = flags.DEFINE_integer('batch_size', 0, 'Examples per step over all processes (each '
                                     'with its views); 0 = eval_batch_size // views.')
  _IMAGE_SIZE = flags.DEFINE_integer('image_size', 0, "Input side in pixels; 0 = the "
                                     "checkpoint's.")
  _JSON = flags.DEFINE_string('json', None, 'Also write the result as JSON to this file.')
  _EMA = flags.DEFINE_bool('ema', True, 'Use the EMA (Polyak-averaged) weights when the checkpoint '
                           'has them (--noema: the raw parameters).')
  _PROCESSES = config_loading.ProcessFlags()
  flags.adopt_module_key_flags(config_loading)  # --help lists them


def main(argv) -> dict[str, Any]:
  config_loading.reject_positional(argv, 'use --checkpoint=DIR and --config.KEY=VALUE')
  crops = _CROPS.value
  if crops not in (1, 10, 144):  # crops.PROTOCOLS, checked before the heavy imports
    raise UserError(f'--crops must be 1, 10 or 144, got {crops!r}')
  if not _CHECKPOINT.value:
    raise UserError('--checkpoint is required: a training --workdir, a converted --out directory '
                    'or a checkpoints/<step> directory')
  config = config_loading.config_from_flag(_CONFIG, catch=(OSError,))
  import jax  # pylint: disable=g-import-not-at-top
  from inception_jax.training import integrity  # pylint: disable=g-import-not-at-top
  from inception_jax.training import parallel  # pylint: disable=g-import-not-at-top
  parallel.maybe_initialize_distributed(**_PROCESSES.distributed_kwargs())
  log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
  try:
    result = evaluate(config, _CHECKPOINT.value, crops=crops, batch_size=_BATCH_SIZE.value,
                      image_size=_IMAGE_SIZE.value, use_ema=_EMA.value, log=log)
  except integrity.PEER_FAILURE_TYPES as e:
    message = peer_failure_message(e)
    if message is None:
      raise
    # Exit now: jax.distributed's shutdown (at exit) would wait for the dead process, then abort.
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(errors.EXIT_USER_ERROR)  # pylint: disable=protected-access
  if jax.process_index() == 0:  # every process holds the same result; one copy is written
    if _JSON.value:
      write_json(_JSON.value, result)
    print(format_result(result), flush=True)
  return result


def _run(argv):
  config_loading.quiet_logging_unless_verbose(sys.argv[1:])
  errors.run_cli(lambda: main(argv))


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(_run, flags_parser=errors.parse_absl_flags)
