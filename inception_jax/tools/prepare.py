"""``python -m inception_jax.tools.prepare --dataset NAME [--data_dir DIR]``: build a TFDS dataset.

What it does: :func:`inception_jax.data.prepare.prepare`.
"""

from __future__ import annotations

import os
import sys

from inception_jax.data.prepare import prepare
from inception_jax.errors import ArgumentParser, run_cli


def main(argv: list[str] | None = None) -> None:
  parser = ArgumentParser(prog='python -m inception_jax.tools.prepare',
                          description=__doc__.splitlines()[0])
  parser.add_argument('--dataset', required=True, help="TFDS name, e.g. 'imagenet2012' or 'digits'")
  parser.add_argument('--data_dir', default=None,
                      help='TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)')
  args = parser.parse_args(argv)
  path = prepare(args.dataset, args.data_dir)
  print(f'{args.dataset} is prepared in {path}')


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  run_cli(lambda: main(sys.argv[1:]))
