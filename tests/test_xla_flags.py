"""inception_jax's one XLA:CPU default (YNNPACK convolutions off) and when it is left alone."""

import subprocess
import sys

import fault_helpers as fh
import pytest

from inception_jax import xla_flags

FLAG = xla_flags.DEFAULT_FLAGS[0]
NEW, OLD = (0, 10, 2), (0, 9, 9)


def test_flag_added_only_when_the_user_has_not_chosen():
  assert xla_flags.flags_to_add('', NEW) == [FLAG]
  assert xla_flags.flags_to_add('--xla_force_host_platform_device_count=8', NEW) == [FLAG]
  # the user's own YNN choice wins, whatever its value
  assert xla_flags.flags_to_add(xla_flags.YNN_FLAG + '=individual_dot', NEW) == []
  assert xla_flags.flags_to_add('', NEW, opt_out='0') == []
  assert xla_flags.flags_to_add('', NEW, opt_out='1') == [FLAG]
  # an older jaxlib may not know the flag (an unknown flag aborts the process)
  assert xla_flags.flags_to_add('', OLD) == []


def _import_in_fresh_process(code: str, **env: str) -> subprocess.CompletedProcess:
  environ = fh.env()  # no XLA_FLAGS, the repository on PYTHONPATH
  environ.pop(xla_flags.OPT_OUT_ENV, None)
  environ.update(env)
  return subprocess.run([sys.executable, '-c', code], env=environ, capture_output=True,
                        text=True, timeout=120, check=True)


@pytest.mark.slow  # spawns three Python processes
def test_import_sets_the_flag_before_jax_starts():
  """What ``import inception_jax`` leaves in XLA_FLAGS, and that XLA accepts it."""
  code = ('import inception_jax, os, jax; jax.numpy.ones(2).block_until_ready(); '
          'print(os.environ.get("XLA_FLAGS", ""))')
  expected = FLAG if xla_flags.jaxlib_version() >= xla_flags.MIN_JAXLIB else ''
  assert _import_in_fresh_process(code).stdout.strip() == expected
  kept = _import_in_fresh_process(code, XLA_FLAGS='--xla_cpu_enable_fast_math=false').stdout
  assert kept.split()[0] == '--xla_cpu_enable_fast_math=false'
  assert _import_in_fresh_process(code, **{xla_flags.OPT_OUT_ENV: '0'}).stdout.strip() == ''


@pytest.mark.slow  # spawns a Python process
def test_too_late_warns_and_changes_nothing():
  if xla_flags.jaxlib_version() < xla_flags.MIN_JAXLIB:
    pytest.skip('jaxlib too old for the flag')
  code = ('import os, jax; jax.numpy.ones(2).block_until_ready(); import inception_jax; '
          'print(repr(os.environ.get("XLA_FLAGS", "")))')
  result = _import_in_fresh_process(code)
  assert result.stdout.strip() == "''"
  assert 'started its backends before inception_jax was imported' in result.stderr
