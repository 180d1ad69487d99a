"""``python -m inception_jax.tools.sweep --config=... --workdir=...`` (the package docstring)."""

import os
import sys

from inception_jax import errors
from inception_jax.tools.sweep import cli

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  errors.run_cli(lambda: sys.exit(cli.main(sys.argv)))
