"""Checkpoints: Orbax ``CheckpointManager`` (asynchronous saves, keep the last K), with metadata.

Layout: ``<workdir>/checkpoints/<step>/{state,metadata}``. ``state`` is the whole
:class:`~inception_jax.training.state.TrainState` saved from host numpy arrays (Orbax writes numpy
leaves from process 0 only, so the same code serves one process or many); ``metadata`` is a JSON
object naming the model, its overrides, the number of classes, the image size, an architecture
fingerprint (shapes of the parameters), ``checksum``, a sha256 over the state's leaves, and
``checksums``, one sha256 per item of the state (``params``, ``batch_stats``, ``opt_state``,
``ema_params``, ...) so a reader of some items (inference) can verify what it read. A damaged
checkpoint can thus be told from a good one (:meth:`Checkpointer.verify`; at resume,
:mod:`inception_jax.training.integrity`). An interrupted save leaves
``<step>.orbax-checkpoint-tmp``, which Orbax ignores. A save that fails (disk full, permissions)
raises :class:`CheckpointWriteError` naming the step and the last committed one, which is intact:
Orbax writes into the temporary directory and renames it only when every file is written.

Checkpoints hold only arrays and JSON: restoring never unpickles anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from inception_jax.errors import UserError

STATE = 'state'
METADATA = 'metadata'
FORMAT = 'inception_jax.checkpoint/1'
CHECKPOINT_SUBDIR = 'checkpoints'

PyTree = Any
log = logging.getLogger(__name__)


def _path_str(path) -> str:
  return jax.tree_util.keystr(path)


def state_checksum(host_state: PyTree) -> str:
  """sha256 over every leaf's path, dtype, shape and bytes (host arrays), in tree order."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(host_state)[0]:
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f'{_path_str(path)}|{a.dtype.str}|{a.shape}|'.encode())
    h.update(a.view(np.uint8).reshape(-1).data if a.size else b'')
  return 'sha256:' + h.hexdigest()


def _items(host_state: PyTree) -> dict[str, PyTree]:
  if dataclasses.is_dataclass(host_state):
    return {f.name: getattr(host_state, f.name) for f in dataclasses.fields(host_state)}
  return dict(host_state)


def item_checksums(host_state: PyTree) -> dict[str, str]:
  """``{item: state_checksum(item)}`` for each top-level item (TrainState field or dict key)."""
  return {name: state_checksum(value) for name, value in _items(host_state).items()}


def architecture_fingerprint(params: PyTree) -> str:
  """sha256 of the parameter paths and shapes: equal iff the networks have the same layers."""
  items = [(_path_str(p), tuple(np.shape(x)))
           for p, x in jax.tree_util.tree_flatten_with_path(params)[0]]
  return 'sha256:' + hashlib.sha256(repr(items).encode()).hexdigest()


def structure_fingerprint(state: PyTree) -> str:
  """sha256 of every leaf's path and shape of the whole state (optimizer and EMA included)."""
  items = [(_path_str(p), tuple(np.shape(x)))
           for p, x in jax.tree_util.tree_flatten_with_path(state)[0]]
  return 'sha256:' + hashlib.sha256(repr(items).encode()).hexdigest()


def run_metadata(config: Any, state: PyTree, *, num_classes: int, total_steps: int
                 ) -> dict[str, Any]:
  """What identifies a run's checkpoints: model, overrides, classes, size, fingerprints, recipe.

  Needs only shapes (``state`` may be the abstract state from ``jax.eval_shape``).
  """
  overrides = config.get('model_overrides')
  overrides = overrides.to_dict() if hasattr(overrides, 'to_dict') else dict(overrides or {})
  return {
      'format': FORMAT,
      'model': config.model,
      'model_overrides': json.loads(json.dumps(overrides, default=str)),
      'num_classes': int(num_classes),
      'image_size': int(config.image_size),
      'normalization': str(config.get('normalization', 'inception')),
      'eval_crop_fraction': float(config.get('eval_crop_fraction', 0.875)),
      'architecture': architecture_fingerprint(state.params),
      'state_structure': structure_fingerprint(state),
      'dataset': str(config.dataset),
      'optimizer': config.optimizer,
      'learning_rate': float(config.learning_rate),
      'global_batch_size': int(config.global_batch_size),
      'num_train_steps': int(total_steps),
      'ema': bool(config.get('ema_decay', 0.0) > 0),
      'seed': int(config.seed),
      'process_count': jax.process_count(),
  }


def build_metadata(config: Any, host_state: PyTree, *, num_classes: int, total_steps: int
                   ) -> dict[str, Any]:
  """The JSON saved next to each state: :func:`run_metadata` plus step, checksum and versions."""
  meta = run_metadata(config, host_state, num_classes=num_classes, total_steps=total_steps)
  meta.update({
      'step': int(np.asarray(host_state.step)),
      'checksum': state_checksum(host_state),
      'checksums': item_checksums(host_state),
      'jax_version': jax.__version__,
      'saved_at': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
  })
  return meta


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any], where: str
                     ) -> list[str]:
  """Raises UserError when ``saved`` belongs to another network or optimiser set-up; returns
  warnings for settings that may change between runs (learning rate, steps, batch, size...)."""
  if saved.get('format') != FORMAT:
    raise UserError(f'{where} holds a checkpoint in an unknown format {saved.get("format")!r}; '
                    'use another --workdir')
  def describe(m):
    return f"{m.get('model')} ({m.get('num_classes')} classes, overrides {m.get('model_overrides')})"
  if (saved.get('model') != current['model'] or saved.get('num_classes') != current['num_classes']
      or saved.get('architecture') != current['architecture']):
    raise UserError(f'{where} holds a checkpoint of {describe(saved)} at step {saved.get("step")}, '
                    f'not of {describe(current)}; use another --workdir (or init_from to fine-tune)')
  if saved.get('state_structure') != current['state_structure']:
    raise UserError(f'{where} holds a checkpoint trained with optimizer={saved.get("optimizer")} '
                    f'ema={saved.get("ema")}, which does not match this config '
                    f'(optimizer={current["optimizer"]}, ema={current["ema"]}); use another '
                    '--workdir or the same optimizer settings')
  warnings = []
  for key in ('learning_rate', 'num_train_steps', 'global_batch_size', 'image_size', 'dataset',
              'seed', 'model_overrides', 'process_count'):
    before, now = _comparable(key, saved.get(key)), _comparable(key, current.get(key))
    if before != now:
      warnings.append(f'{key} changed from {before!r} to {now!r} since the '
                      f'checkpoint at step {saved.get("step")}')
  return warnings


def _comparable(key: str, value: Any) -> Any:
  """Overrides as set: metadata keeps the unset fields as None, and which fields exist depends
  on the models registered in the process (a registered model adds its own), not on the run."""
  if key == 'model_overrides' and isinstance(value, dict):
    return {k: v for k, v in value.items() if v is not None}
  return value


class CheckpointWriteError(UserError):
  """A checkpoint could not be written (disk full, read-only, quota); older steps are intact."""


def _write_reason(e: BaseException) -> str:
  """The most telling part of a failed write: the operating system's reason when there is one
  (an OSError in the chain, or TensorStore's ``[os_error_code='28']``), else the first line."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.strerror:
      return f'{seen.strerror}' + (f': {seen.filename}' if seen.filename else '')
    seen = seen.__cause__ or seen.__context__
  text = str(e).strip()
  code = re.search(r"os_error_code='?(\d+)", text)
  if code:
    return f'{os.strerror(int(code.group(1)))} (errno {code.group(1)})'
  return f'{type(e).__name__}: {text.splitlines()[0][:300] if text else ""}'.rstrip(': ')


class Checkpointer:
  """Saves and restores TrainStates under ``directory`` (see the module docstring).

  ``save`` returns at once (the write continues in the background); ``wait`` blocks until every
  started save is committed. All processes must call ``save``/``wait``/``close`` together.
  """

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    directory = os.fspath(directory)
    self.directory = directory if '://' in directory else os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep if keep and keep > 0 else None, create=not read_only,
        read_only=read_only, enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=(STATE, METADATA))
    self._in_flight = None   # the step whose asynchronous save may still be running
    self._failed = False     # a write error was raised (close() then does not raise it again)

  def reload(self) -> None:
    """Re-reads the step list from disk (after steps were moved aside)."""
    self.manager.reload()

  def _committed(self) -> list[int]:
    try:
      return sorted(self.manager.all_steps())  # a failed save is already dropped from the list
    except Exception:  # noqa: BLE001
      return []

  def _write_error(self, step: int | None, e: BaseException) -> CheckpointWriteError:
    self._failed = True
    committed = [s for s in self._committed() if s != step]
    last = (f'the last committed checkpoint, step {committed[-1]}, is intact' if committed
            else 'no checkpoint was committed')
    log.debug('checkpoint write failed', exc_info=e)
    return CheckpointWriteError(
        f'could not write the checkpoint of step {step} to {self.directory} '
        f'({_write_reason(e)}); {last}; free some space (or fix the permissions) and run the same '
        'command again to resume')

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, host_state: PyTree, metadata: Mapping[str, Any]) -> None:
    """Starts an asynchronous save of ``host_state`` (numpy leaves) at ``metadata['step']``."""
    step = int(metadata['step'])
    self.wait()  # a failure of the previous save is reported as that step's
    if step in self.manager.all_steps():
      return  # already saved (e.g. the final save right after a periodic one)
    try:
      self.manager.save(step, args=ocp.args.Composite(
          **{STATE: ocp.args.PyTreeSave(host_state),
             METADATA: ocp.args.JsonSave(dict(metadata))}), force=True)
    except Exception as e:  # noqa: BLE001 - Orbax/TensorStore raise many types for I/O
      raise self._write_error(step, e) from None
    self._in_flight = step

  def wait(self) -> None:
    """Blocks until the started save is committed; CheckpointWriteError if it failed."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001
      raise self._write_error(self._in_flight, e) from None
    finally:
      self._in_flight = None

  def read_metadata(self, step: int) -> dict[str, Any]:
    return dict(self.manager.restore(step, args=ocp.args.Composite(
        **{METADATA: ocp.args.JsonRestore()}))[METADATA])

  def restore(self, step: int, abstract_state: PyTree) -> PyTree:
    """The state saved at ``step`` as host numpy arrays, in the structure of ``abstract_state``."""
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                abstract_state)
    out = self.manager.restore(step, args=ocp.args.Composite(
        **{STATE: ocp.args.PyTreeRestore(item=abstract_state, restore_args=restore_args)}))
    return out[STATE]

  def restore_raw(self, step: int) -> dict[str, Any]:
    """The saved state as nested dicts of numpy arrays, whatever its structure (for init_from)."""
    out = self.manager.restore(step, args=ocp.args.Composite(**{STATE: ocp.args.PyTreeRestore()}))
    return jax.tree.map(np.asarray, out[STATE])

  def verify(self, step: int, abstract_state: PyTree) -> str | None:
    """None when the checkpoint at ``step`` restores and matches its checksum, else the reason."""
    try:
      meta = self.read_metadata(step)
    except Exception as e:  # noqa: BLE001 - any failure means "damaged"
      return f'metadata unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})'
    try:
      state = self.restore(step, abstract_state)
    except Exception as e:  # noqa: BLE001
      return f'state unreadable ({type(e).__name__}: {str(e).splitlines()[0][:200]})'
    if state_checksum(state) != meta.get('checksum'):
      return 'checksum mismatch'
    return None

  def close(self) -> None:
    """Waits for the last save and closes; a write error already raised is not raised again."""
    reported = self._failed
    try:
      self.wait()
    except CheckpointWriteError:
      if not reported:
        raise
    finally:
      try:
        self.manager.close()
      except Exception:  # noqa: BLE001 - after a write error, closing may fail too
        if not self._failed:
          raise


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.fspath(workdir), CHECKPOINT_SUBDIR)


def load_pretrained(path: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
  """``(params, batch_stats, metadata)`` of the latest checkpoint under ``path`` (a workdir or its
  ``checkpoints`` directory), as nested dicts of numpy arrays."""
  path = os.fspath(path)
  candidates = [checkpoint_dir(path), path]
  for directory in candidates:
    if os.path.isdir(directory):
      ckpt = Checkpointer(directory, read_only=True)
      step = ckpt.latest_step()
      if step is not None:
        try:
          raw, meta = _read_verified(ckpt, step)
        finally:
          ckpt.close()
        return raw['params'], raw.get('batch_stats') or {}, meta
      ckpt.close()
  raise UserError(f'init_from={path!r} holds no checkpoint (looked in {" and ".join(candidates)})')


def _read_verified(ckpt: Checkpointer, step: int) -> tuple[dict[str, Any], dict[str, Any]]:
  """The raw state and metadata of ``step``, checked against the recorded sha256 checksums;
  UserError naming the step when it is unreadable or altered (never used silently)."""
  where = os.path.join(ckpt.directory, str(step))
  try:
    meta = ckpt.read_metadata(step)
    raw = ckpt.restore_raw(step)
  except Exception as e:  # noqa: BLE001 - any failure to read means "damaged"
    raise UserError(f'checkpoint {where} is damaged ({_write_reason(e)}); use another one') from None
  items = meta.get('checksums')
  if isinstance(items, dict):
    bad = [k for k in ('params', 'batch_stats') if k in raw and items.get(k)
           and state_checksum(raw[k]) != items[k]]
  elif meta.get('checksum') and set(raw) <= {'params', 'batch_stats'}:  # a converted checkpoint
    bad = [] if state_checksum(raw) == meta['checksum'] else ['params/batch_stats']
  else:
    bad = []
  if bad:
    raise UserError(f'checkpoint {where} is damaged (checksum mismatch in {", ".join(bad)}); '
                    'use another one')
  return raw, meta


def merge_pretrained(params: PyTree, pretrained: PyTree) -> tuple[PyTree, list[str], list[str]]:
  """Takes every leaf of ``pretrained`` whose path and shape match ``params``; returns
  ``(merged, loaded_paths, kept_paths)`` (kept = left at initialisation, e.g. a new classifier)."""
  flat_pre = {_path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
  loaded, kept = [], []

  def pick(path, x):
    key = _path_str(path)
    y = flat_pre.get(key)
    if y is not None and np.shape(y) == np.shape(x):
      loaded.append(key)
      return np.asarray(y, dtype=np.asarray(x).dtype)
    kept.append(key)
    return x

  merged = jax.tree_util.tree_map_with_path(pick, params)
  return merged, loaded, kept
