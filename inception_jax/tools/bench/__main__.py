"""``python -m inception_jax.tools.bench``: see :mod:`inception_jax.tools.bench`."""

from inception_jax import errors
from inception_jax.tools import bench
from inception_jax.tools.bench import cli

# absl's --help (``--pipeline-only --help``) prints the ``__main__`` module's docstring: the
# command's documentation is the package's.
__doc__ = bench.__doc__  # pylint: disable=redefined-builtin

if __name__ == '__main__':
  errors.run_cli(cli.main)
