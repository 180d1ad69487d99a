"""Checkpoint integrity at resume: verify the newest step, move damaged ones aside, fall back.

Orbax lists every integer-named step directory as a checkpoint and fails only when one is restored,
so a step damaged after its commit (a data file lost, a flipped bit, metadata deleted by hand)
would stop every rerun of a week-long job. :func:`find_resume_point` tries the committed steps
newest first; a step is good when its metadata reads, belongs to this run's network (else a
one-line :class:`~inception_jax.errors.UserError`: another model's checkpoint is refused, never
moved), its state restores in full, and every item matches the sha256 recorded when it was saved
(``checksums`` per item, or the older single ``checksum``), with finite values and the right step.

A damaged step newer than the good one is **moved**, never deleted, to
``<workdir>/checkpoints_quarantine/<step>-<reason>`` (a line per move goes to ``log.txt`` there),
with a warning naming the step and the reason, and the run resumes from the newest good step.
Unfinished saves (``<step>.orbax-checkpoint-tmp-*``, left by a kill during an asynchronous save,
which Orbax ignores) are moved there too. If no step is good, nothing is moved and the run stops
with an error: starting again from scratch is the user's decision.

:func:`check_free_space` refuses to start when the checkpoint filesystem cannot hold the next
checkpoint, rather than failing after the first ``checkpoint_every_steps`` steps.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import time
from typing import Any, Callable, Mapping

from etils import epath
import jax
import numpy as np

from inception_jax.errors import UserError, first_line
from inception_jax.training import checkpoint as ckpt_lib

QUARANTINE_SUBDIR = 'checkpoints_quarantine'
QUARANTINE_LOG = 'log.txt'
_TMP_STEP = re.compile(r'^(\d+)\.orbax-checkpoint-tmp')

PyTree = Any


class Damaged(Exception):
  """A committed step that cannot be resumed from; the message is the reason."""

  def __init__(self, reason: str, slug: str):
    super().__init__(reason)
    self.slug = slug


@dataclasses.dataclass
class ResumePoint:
  """The newest good checkpoint: its step, host state, metadata and the settings warnings."""
  step: int
  state: Any
  metadata: dict[str, Any]
  warnings: list[str]


def _summary(e: BaseException) -> str:
  text = str(e).strip()
  return f'{type(e).__name__}: {text.splitlines()[0][:200] if text else ""}'.rstrip(': ')


def quarantine_dir(workdir: str) -> str:
  return os.path.join(os.fspath(workdir), QUARANTINE_SUBDIR)


def _names(directory: str) -> list[str]:
  try:
    return [p.name for p in epath.Path(directory).iterdir()]
  except (OSError, ValueError):  # missing (a first run), or not listable
    return []


def committed_steps(directory: str) -> list[int]:
  """Integer-named step directories, newest first (what Orbax would list)."""
  return sorted((int(n) for n in _names(directory) if n.isdigit()
                 and epath.Path(directory, n).is_dir()), reverse=True)


def unfinished_saves(directory: str) -> list[str]:
  """Names of ``<step>.orbax-checkpoint-tmp*`` directories: saves that never committed."""
  return sorted(n for n in _names(directory) if _TMP_STEP.match(n))


def verify_step(checkpointer: ckpt_lib.Checkpointer, step: int, abstract_state: PyTree,
                current_meta: Mapping[str, Any] | None, where: str
                ) -> tuple[Any, dict[str, Any], list[str]]:
  """``(host_state, metadata, warnings)`` of a good step; raises :class:`Damaged` otherwise.

  Raises UserError (not Damaged) when the step is intact but belongs to another network or
  optimiser set-up (``ckpt_lib.check_compatible``): that is the user's mistake, not damage.
  """
  step_dir = epath.Path(checkpointer.directory, str(step))
  if not (step_dir / ckpt_lib.METADATA).is_dir():
    raise Damaged('its metadata is missing', 'metadata-missing')
  if not (step_dir / ckpt_lib.STATE).is_dir():
    raise Damaged('its state is missing', 'state-missing')
  try:
    meta = checkpointer.read_metadata(step)
  except Exception as e:  # noqa: BLE001 - any failure to read means "damaged"
    raise Damaged(f'its metadata is unreadable ({_summary(e)})', 'metadata-unreadable') from None
  if not isinstance(meta.get('checksums'), dict) and not meta.get('checksum'):
    raise Damaged('its metadata has no checksum', 'metadata-incomplete')
  warnings = (ckpt_lib.check_compatible(meta, current_meta, where)
              if current_meta is not None else [])
  try:
    state = checkpointer.restore(step, abstract_state)
  except Exception as e:  # noqa: BLE001
    raise Damaged(f'its state is unreadable ({_summary(e)})', 'state-unreadable') from None
  expected = meta.get('checksums')
  if isinstance(expected, dict):
    actual = ckpt_lib.item_checksums(state)
    bad = sorted(k for k in expected if actual.get(k) != expected[k])
    if bad or set(actual) != set(expected):
      bad = bad or sorted(set(actual) ^ set(expected))
      raise Damaged(f'checksum mismatch in {", ".join(bad)}', 'checksum-mismatch')
  elif ckpt_lib.state_checksum(state) != meta.get('checksum'):
    raise Damaged('checksum mismatch', 'checksum-mismatch')
  saved_step = int(np.asarray(state.step)) if hasattr(state, 'step') else step
  if saved_step != step or meta.get('step', step) != step:
    raise Damaged(f'it holds step {saved_step} (metadata {meta.get("step")}), not {step}',
                  'step-mismatch')
  for leaf in jax.tree.leaves(state):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.floating) and not np.all(np.isfinite(leaf)):
      raise Damaged('it holds non-finite values', 'non-finite')
  return state, meta, warnings


def _move_aside(src: str, qdir: str, name: str, reason: str) -> str:
  """Renames ``src`` to ``qdir/name`` (``name.2``... if taken) and logs it; UserError if it cannot:
  a damaged step left in place would keep Orbax from saving that step again."""
  try:
    epath.Path(qdir).mkdir(parents=True, exist_ok=True)
    dst = epath.Path(qdir, name)
    n = 1
    while dst.exists():
      n += 1
      dst = epath.Path(qdir, f'{name}.{n}')
    epath.Path(src).rename(dst)
    log = epath.Path(qdir, QUARANTINE_LOG)
    before = log.read_text() if log.exists() else ''
    log.write_text(f'{before}{time.strftime("%Y-%m-%dT%H:%M:%S%z")}\t{src}\t->\t{dst}\t'
                   f'{reason}\n')
  except OSError as e:
    raise UserError(f'{src} is damaged ({reason}) but could not be moved to {qdir} '
                    f'({e.strerror or e}); move it out of the checkpoint directory by hand and '
                    'run the same command again') from None
  return os.fspath(dst)


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def find_resume_point(checkpointer: ckpt_lib.Checkpointer, abstract_state: PyTree,
                      current_meta: Mapping[str, Any] | None, *, workdir: str,
                      say: Callable[[str], None] = print) -> ResumePoint | None:
  """The newest good checkpoint under ``checkpointer`` (module docstring), or None if none exists.

  Every process verifies (they read the same files, so they agree); process 0 moves damaged steps
  and unfinished saves to the quarantine, between barriers; then the manager's step list is
  reloaded. Raises UserError when steps exist but none is good, or one is another model's.
  """
  directory = checkpointer.directory
  qdir = quarantine_dir(workdir)
  is_main = jax.process_index() == 0
  damaged: list[tuple[int, Damaged]] = []
  found = None
  for step in committed_steps(directory):
    try:
      state, meta, warnings = verify_step(checkpointer, step, abstract_state, current_meta,
                                          workdir)
    except Damaged as e:
      damaged.append((step, e))
      continue
    found = ResumePoint(step=step, state=state, metadata=meta, warnings=warnings)
    break
  if damaged and found is None:
    listing = '; '.join(f'step {s}: {e}' for s, e in damaged)
    raise UserError(f'every checkpoint in {directory} is damaged ({listing}); nothing was moved: '
                    f'move them out of {directory} to start from scratch, or use another '
                    '--workdir')
  tmp = unfinished_saves(directory)
  _barrier('inception_jax.integrity.verified')
  if is_main:
    for step, e in damaged:
      dst = _move_aside(os.path.join(directory, str(step)), qdir, f'{step}-{e.slug}', str(e))
      say(f'warning: checkpoint step {step} in {directory} is damaged ({e}); moved it to {dst} '
          f'and resuming from step {found.step}')
    for name in tmp:
      step = _TMP_STEP.match(name).group(1)
      dst = _move_aside(os.path.join(directory, name), qdir, f'{step}-unfinished-save',
                        'unfinished save (killed or failed before its commit)')
      say(f'warning: the save of step {step} never committed (the run was killed or the write '
          f'failed); moved its partial files {name} to {dst}')
  _barrier('inception_jax.integrity.moved')
  if damaged or tmp:
    checkpointer.reload()
  return found


def checkpoint_bytes(abstract_state: PyTree) -> int:
  """Bytes of the arrays one checkpoint holds (the files add a little more)."""
  return int(sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(abstract_state)))


def check_free_space(directory: str, abstract_state: PyTree, *, margin: float = 1.5) -> None:
  """UserError before training when ``directory``'s filesystem cannot hold one more checkpoint
  (its arrays times ``margin``): a full disk is reported now, not after hours of training."""
  if '://' in os.fspath(directory):
    return  # cloud storage: no meaningful "free space"
  need = int(checkpoint_bytes(abstract_state) * margin)
  probe = os.path.abspath(os.fspath(directory))
  while not os.path.exists(probe) and os.path.dirname(probe) != probe:
    probe = os.path.dirname(probe)
  try:
    free = shutil.disk_usage(probe).free
  except OSError:
    return  # not measurable here (some network filesystems); the save reports a failure itself
  if free < need:
    raise UserError(f'the checkpoint directory {directory} has {_mb(free)} free, but one '
                    f'checkpoint of this model needs about {_mb(need)}; free some space or choose '
                    'another --workdir')


def _mb(n: int) -> str:
  return f'{n / 2**20:.1f} MiB'


# OS errors that mean "the workdir cannot take more data": reported in one line by train.py.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                         errno.EFBIG})


def disk_error_message(e: OSError, workdir: str) -> str | None:
  """A one-line message for an OSError writing the workdir (full, read-only...), else None."""
  if e.errno not in DISK_ERRNOS:
    return None
  steps = committed_steps(ckpt_lib.checkpoint_dir(workdir))
  last = (f'the last committed checkpoint is step {steps[0]} in '
          f'{ckpt_lib.checkpoint_dir(workdir)}' if steps else 'no checkpoint was committed')
  return (f'cannot write {e.filename or workdir} ({e.strerror or e}); {last}; free some space '
          '(or fix the permissions) and run the same command again to resume')


# Words in the errors a collective or barrier raises when another process of the job died. JAX
# raises them as JaxRuntimeError (a RuntimeError) from an execution and as ValueError from some
# dispatches (a gloo all-gather whose peer closed its connection).
PEER_FAILURE_TYPES = (RuntimeError, ValueError)
_PEER_FAILURE_WORDS = ('gloo', 'connection reset', 'connection refused', 'heartbeat',
                       'unavailable', 'deadline_exceeded', 'barrier', 'coordination',
                       'socket closed', 'broken pipe', 'connection closed', 'peer')


def is_peer_failure(e: BaseException) -> bool:
  """Whether ``e``, raised in a multi-process job, says another process of the job is gone."""
  if jax.process_count() == 1 or not isinstance(e, PEER_FAILURE_TYPES):
    return False
  text = str(e).lower()
  return any(word in text for word in _PEER_FAILURE_WORDS)


def peer_failure_message(e: BaseException, workdir: str) -> str | None:
  """A one-line message when ``e`` (raised in a multi-process run) says another process of the
  job is gone, else None. The caller exits at once: ``jax.distributed``'s shutdown barrier would
  wait for the dead process until its heartbeat times out, then abort."""
  if not is_peer_failure(e):
    return None
  steps = committed_steps(ckpt_lib.checkpoint_dir(workdir))
  last = (f'the last committed checkpoint is step {steps[0]} in '
          f'{ckpt_lib.checkpoint_dir(workdir)}' if steps else 'no checkpoint was committed yet')
  first = first_line(e)
  return (f'process {jax.process_index()} of {jax.process_count()}: another process of this job '
          f'failed or was killed ({first}); {last}; start all {jax.process_count()} processes '
          'again with the same command to resume')
