"""``python -m inception_jax.tools.report SWEEP_DIR``: see :mod:`inception_jax.tools.report`."""

import sys

from inception_jax import errors
from inception_jax.tools.report import cli

if __name__ == '__main__':
  errors.run_cli(lambda: sys.exit(cli.main()))
