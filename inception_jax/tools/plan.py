r"""``python -m inception_jax.tools.plan``: what a config will do, before the first step and without the data.

  python -m inception_jax.tools.plan --config=configs/inception_v3_imagenet.py --devices=8
  python -m inception_jax.tools.plan --config=configs/googlenet_imagenet.py \
      --config.global_batch_size=1024 --devices=32 --images_per_second=7700 --json
  python -m inception_jax.tools.plan --config=configs/default.py --workdir=workdirs/default   # measured

The numbers are :mod:`inception_jax.training.plan`'s, the same the training loop logs at start.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from inception_jax import errors
from inception_jax.config import loading as config_loading
from inception_jax.errors import UserError
from inception_jax.training.plan import format_plan, make_plan, measured_images_per_second

_DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    'configs', 'default.py')


def _define_flags() -> None:
  """The flags; config_flags applies ``--config.KEY=VALUE`` while parsing (as train.py)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  global _CONFIG, _DEVICES, _PROCESSES, _IPS, _WORKDIR, _JSON, _NUM_TRAIN, _NUM_EVAL
  _CONFIG = config_loading.define_config_flag(
      _DEFAULT_CONFIG if os.path.exists(_DEFAULT_CONFIG) else None,
      'Training config file (configs/*.py[:variant]).', 'python -m inception_jax.tools.plan')
  _DEVICES = flags.DEFINE_integer(
      'devices', 0, 'Devices over all processes; 0 = config.num_devices, else this machine\'s.',
      lower_bound=0)
  _PROCESSES = flags.DEFINE_integer('processes', 1, 'Host processes of the run.', lower_bound=1)
  _IPS = flags.DEFINE_float('images_per_second', None,
                            'Training speed for the wall-time estimate (images/s).')
  _WORKDIR = flags.DEFINE_string(
      'workdir', None, 'A training workdir: use the median images/s its metrics.jsonl logged.')
  _JSON = flags.DEFINE_bool('json', False, 'Print the plan as one JSON object.')
  _NUM_TRAIN = flags.DEFINE_integer(
      'num_train_examples', None, 'Train split size, for a dataset that is not prepared here.',
      lower_bound=1)
  _NUM_EVAL = flags.DEFINE_integer('num_eval_examples', None, 'Eval split size (optional).',
                                   lower_bound=1)


def main(argv) -> dict[str, Any]:
  config_loading.reject_positional(argv)
  if _IPS.value is not None and _WORKDIR.value:
    raise UserError('give --images_per_second or --workdir (measured speed), not both')
  config = config_loading.config_from_flag(_CONFIG)
  speed = _IPS.value
  if _WORKDIR.value:
    speed = measured_images_per_second(_WORKDIR.value)
  plan = make_plan(config, _DEVICES.value or None, speed, num_processes=_PROCESSES.value,
                   num_train_examples=_NUM_TRAIN.value, num_eval_examples=_NUM_EVAL.value)
  print(json.dumps(plan, indent=1) if _JSON.value else format_plan(plan), flush=True)
  return plan


def _run(argv):
  config_loading.quiet_logging_unless_verbose(sys.argv[1:])
  errors.run_cli(lambda: main(argv))


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(_run, flags_parser=errors.parse_absl_flags)
