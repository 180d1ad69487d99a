"""Config files that build on each other: loading by path, ``path.py:arg`` specs, dotted changes.

Config files (``configs/**/*.py``) are files, not a package, so they load one another by path with
:func:`load_config_module` / :func:`load_config_file`, and state what they change from the config
they start from as a dict of dotted fields applied by :func:`apply_overrides`, which refuses a
misspelt field instead of adding it. The command lines read their ``--config`` through
:func:`define_config_flag` and :func:`config_from_flag`, and share :func:`reject_positional` and
:func:`quiet_logging_unless_verbose`. This module imports only ml_collections (absl, lazily) and
this package's ``errors``; a config built on ``schema.base_config()`` also loads the model
registry (and JAX) once, for the types of the model fields it can override.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import sys
import types
from typing import Any, Mapping, Sequence

import ml_collections

from inception_jax import errors
from inception_jax.errors import UserError

DATASETS = ('digits', 'imagenet')  # the data options of the configs that offer both


def split_config_spec(spec: str) -> tuple[str, str | None]:
  """``'path.py:arg'`` -> (``'path.py'``, ``'arg'``); train.py's ``--config`` syntax."""
  head, sep, tail = spec.partition('.py:')
  if sep:
    return head + '.py', tail
  return spec, None


def define_config_flag(default: str | None, help_text: str, command: str) -> Any:
  """``--config``, the locked ml_collections config-file flag every command line here takes.

  config_flags applies ``--config.KEY=VALUE`` while the flag is defined, so a misspelt field is
  caught here and becomes one line that points at ``command --helpfull`` (which lists the
  fields), instead of a traceback.
  """
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  try:
    return config_flags.DEFINE_config_file('config', default, help_text, lock_config=True)
  except (AttributeError, KeyError) as e:
    errors.fail(errors.unknown_config_field(e, sys.argv[1:],
                                            f'`{command} --helpfull` lists the fields'))


class ProcessFlags:
  """``--coordinator_address``, ``--num_processes``, ``--process_id``, ``--multihost`` and
  ``--heartbeat_timeout``: how a command joins a multi-process job (train.py, evaluation)."""

  def __init__(self) -> None:
    from absl import flags  # pylint: disable=g-import-not-at-top
    self._flags = (
        flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0 for a '
                            'multi-process run (not needed on TPU pods, SLURM or Open MPI).'),
        flags.DEFINE_integer('num_processes', None, 'Processes in a multi-process run.'),
        flags.DEFINE_integer('process_id', None, 'This process in [0, num_processes).'),
        flags.DEFINE_bool('multihost', False,
                          'Force jax.distributed.initialize() with cluster auto-detection.'),
        flags.DEFINE_integer('heartbeat_timeout', None, 'Multi-process: seconds without a '
                             'heartbeat after which a vanished process is declared dead and the '
                             "others stop (JAX's default: 100).", lower_bound=1))

  def distributed_kwargs(self) -> dict[str, Any]:
    """The arguments of ``training.parallel.maybe_initialize_distributed``."""
    coordinator, num_processes, process_id, multihost, heartbeat = (f.value for f in self._flags)
    return {'coordinator_address': coordinator, 'num_processes': num_processes,
            'process_id': process_id, 'force': multihost, 'heartbeat_timeout': heartbeat}


def reject_positional(argv: Sequence[str], hint: str = 'use --config.KEY=VALUE') -> None:
  """absl hands leftover words back as ``argv[1:]``: a one-line error saying what to use."""
  if len(argv) > 1:
    raise UserError(f'unexpected arguments {" ".join(argv[1:])!r}; {hint}')


def quiet_logging_unless_verbose(argv: Sequence[str]) -> None:
  """absl logging at WARNING (Orbax and TFDS are chatty at INFO) unless ``argv`` sets
  ``--verbosity``/``-v``."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  if not any(a.startswith(('--verbosity', '-v', '--v=')) for a in argv):
    logging.set_verbosity(logging.WARNING)


def config_from_flag(flag: Any, *, probe: str = 'dataset',
                     catch: tuple[type[BaseException], ...] = (OSError, ValueError)
                     ) -> ml_collections.ConfigDict:
  """The config an ml_collections ``config_flags`` flag holds, or a one-line UserError.

  config_flags loads the file only when the value is first used, so a missing or broken file
  surfaces here, on reading ``probe``, as the last line of its error (``catch``: what counts as a
  failed load for the caller).
  """
  try:
    config = flag.value
    if config is None:
      raise UserError('--config is required (e.g. --config=configs/default.py)')
    config.get(probe)
  except catch as e:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise UserError(f'cannot load --config: {lines[-1] if lines else e}') from None
  return config


def load_config_module(path: str, *, relative_to: str | None = None) -> types.ModuleType:
  """Imports a Python file by path (this works from any working directory).

  A relative ``path`` is taken from ``relative_to``: a directory, or a file (then its directory,
  so a config file passes its own ``__file__``).
  """
  if relative_to is not None and not os.path.isabs(path):
    if os.path.isfile(relative_to):
      relative_to = os.path.dirname(os.path.abspath(relative_to))
    path = os.path.join(relative_to, path)
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise UserError(f'config file {path!r} does not exist')
  name = '_inception_jax_config_' + hashlib.sha1(path.encode()).hexdigest()[:12]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load_config_file(spec: str, *, relative_to: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of a config file given as ``path[:arg]``, as config_flags loads it
  (``get_config()`` without an arg)."""
  path, arg = split_config_spec(spec)
  module = load_config_module(path, relative_to=relative_to)
  if not hasattr(module, 'get_config'):
    raise UserError(f'config file {path!r} defines no get_config()')
  return module.get_config(arg) if arg is not None else module.get_config()


def parse_arg(arg: str | None, allowed: Sequence[str], default: Sequence[str] = ()
              ) -> set[str]:
  """Config-file ``arg`` as a set of comma-separated options (``'imagenet,product'``)."""
  options = {a.strip() for a in (arg or '').split(',') if a.strip()} or set(default)
  unknown = sorted(options - set(allowed))
  if unknown:
    raise UserError(f'unknown config option {", ".join(map(repr, unknown))}; choose from '
                    f'{", ".join(allowed)} (comma-separated), e.g. --config=FILE.py:{allowed[0]}')
  return options


def dataset_option(arg: str | None, *, default: str, extra: Sequence[str] = ()
                   ) -> tuple[str, set[str]]:
  """``arg`` as (dataset, other options): one of :data:`DATASETS` (``default`` when it names
  neither) and any of ``extra`` (e.g. ``'imagenet,product'`` -> ``('imagenet', {'product'})``)."""
  datasets = (default,) + tuple(d for d in DATASETS if d != default)
  options = parse_arg(arg, datasets + tuple(extra))
  chosen = options & set(DATASETS)
  if len(chosen) > 1:
    raise ValueError(f'choose one of {", ".join(datasets)}')
  return (chosen.pop() if chosen else default), options - chosen


def choose_variant(arg: str | None, variants: Sequence[str], where: str) -> str:
  """The named variant of a config file (``variants[0]`` for an empty ``arg``)."""
  variant = (arg or '').strip() or variants[0]
  if variant not in variants:
    name = os.path.basename(where)
    raise ValueError(f'unknown variant {variant!r} of {name}; use '
                     f'{" or ".join(repr(v) for v in variants)} (e.g. '
                     f'configs/{name}:{variants[-1]})')
  return variant


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str
                    ) -> ml_collections.ConfigDict:
  """A copy of ``config`` with dotted fields set as ``--config.a.b=v`` would set them; unknown
  fields and bad types are UserErrors naming ``where``."""
  # copy.deepcopy, not ConfigDict(config): that copy shares the unset placeholders' references,
  # so setting one in the copy would set it in the original (and in every other copy) too.
  config = copy.deepcopy(config)
  for path, value in overrides.items():
    parent, keys = config, path.split('.')
    for key in keys[:-1]:
      if key not in parent or not isinstance(parent[key], ml_collections.ConfigDict):
        raise UserError(f'{path!r} is not a field of {where}')
      parent = parent[key]
    if keys[-1] not in parent:
      raise UserError(f'{path!r} is not a field of {where}')
    try:
      with parent.unlocked():
        parent[keys[-1]] = value
    except (TypeError, ValueError) as e:
      raise UserError(f'{path}={value!r} does not fit {where}: {" ".join(str(e).split())}'
                      ) from None
  return config
