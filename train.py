r"""Train GoogLeNet / Inception v3 (the Flax examples' command line).

  python train.py                                   # offline quick start -> ./workdirs/default
  python train.py --config=configs/googlenet_imagenet.py --workdir=/ckpt/googlenet \
      --config.data_dir=/data/tfds --config.global_batch_size=1024

Rerunning with the same ``--workdir`` resumes from its latest checkpoint. Exit status: 0 done,
2 a one-line error (bad config, unprepared data, another model's checkpoint in the workdir, a
non-finite loss), 143 preempted by SIGTERM after saving a checkpoint (rerun to resume).

Multi-process (one process per host, or per GPU): on a Cloud TPU pod slice, SLURM or Open MPI the
processes find each other automatically; elsewhere pass ``--coordinator_address=HOST:PORT
--num_processes=N --process_id=I`` (or set ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from inception_jax.config import loading as config_loading
from inception_jax import errors
from inception_jax.errors import UserError

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs', 'default.py')


def _define_flags() -> None:
  """Defines the flags; config_flags already applies ``--config.KEY=VALUE`` here, so a bad key
  or value is reported as one line instead of a traceback."""
  global _CONFIG, _WORKDIR, _PROCESSES
  global _COMPILATION_CACHE
  _CONFIG = config_loading.define_config_flag(
      _DEFAULT_CONFIG, 'Training configuration file (configs/*.py).', 'python train.py')
  _WORKDIR = flags.DEFINE_string(
      'workdir', os.path.join('workdirs', 'default'),
      'Directory for checkpoints, metrics.jsonl, TensorBoard events and config.json; rerunning '
      'with the same directory resumes.')
  _COMPILATION_CACHE = flags.DEFINE_string(
      'compilation_cache_dir', None, "JAX's persistent compilation cache, so a rerun (a resume "
      'after preemption) loads the compiled steps instead of compiling them again. Default: '
      "<workdir>/xla_cache for single-process runs on a local path; '' turns it off.")
  _PROCESSES = config_loading.ProcessFlags()
  flags.adopt_module_key_flags(config_loading)  # --help lists them


def main(argv):
  config_loading.reject_positional(argv)
  # pylint: disable-next=g-import-not-at-top
  from inception_jax.training import compilation_cache, integrity, loop, parallel

  config = config_loading.config_from_flag(_CONFIG, probe='model', catch=(OSError,))

  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and TFDS are chatty at INFO
    errors.hide_library_tracebacks()         # e.g. a full disk: one line, then ours
  parallel.maybe_initialize_distributed(**_PROCESSES.distributed_kwargs())
  compilation_cache.enable(_COMPILATION_CACHE.value, _WORKDIR.value)
  try:
    result = loop.train_and_evaluate(config, _WORKDIR.value)
  except OSError as e:  # the workdir filled up or became read-only (metrics, config.json, ...)
    message = integrity.disk_error_message(e, _WORKDIR.value)
    if message is None:
      raise
    raise UserError(message) from None
  except integrity.PEER_FAILURE_TYPES as e:
    message = integrity.peer_failure_message(e, _WORKDIR.value)
    if message is None:
      raise
    # Exit now: jax.distributed's shutdown (at exit) would wait for the dead process, then abort.
    print(f'error: {message}', file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(errors.EXIT_USER_ERROR)  # pylint: disable=protected-access
  if result.preempted:
    sys.exit(loop.PREEMPTED_EXIT_CODE)


def _run(argv):
  errors.run_cli(lambda: main(argv))


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  _define_flags()
  app.run(_run, flags_parser=errors.parse_absl_flags)
