"""``python -m inception_jax.tools.fake_imagenet --manual_dir DIR``: ILSVRC-2012 tarballs to rehearse with.

  python -m inception_jax.tools.fake_imagenet --manual_dir D/downloads/manual [--classes K] \
      [--train_per_class N] [--val N] [--seed S]
  python -m inception_jax.tools.prepare --dataset imagenet2012 --data_dir D   # the real builder

What is written: :mod:`inception_jax.data.fake_imagenet`.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from inception_jax.data.fake_imagenet import TRAIN_TAR, VAL_TAR, make_plan, write
from inception_jax.errors import ArgumentParser, run_cli


def main(argv: Sequence[str] | None = None) -> None:
  parser = ArgumentParser(prog='python -m inception_jax.tools.fake_imagenet',
                          description=__doc__.splitlines()[0])
  parser.add_argument('--manual_dir', required=True,
                      help='where to write the tarballs: <data_dir>/downloads/manual for prepare')
  parser.add_argument('--classes', type=int, default=10,
                      help='training synsets, at least those the validation images need')
  parser.add_argument('--train_per_class', type=int, default=8)
  parser.add_argument('--val', type=int, default=50,
                      help='validation images (the first N of ILSVRC 2012, labelled by TFDS)')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  manual_dir = os.path.abspath(args.manual_dir)
  plan = make_plan(args.classes, args.train_per_class, args.val)
  counts = write(manual_dir, plan, args.seed)
  print(f'wrote {TRAIN_TAR} ({counts["train"]} images in {len(plan.train_synsets)} synsets) and '
        f'{VAL_TAR} ({counts["validation"]} images) to {manual_dir}; odd files as in ILSVRC: '
        f'{counts["cmyk"]} CMYK, {counts["png"]} PNG named .JPEG, {counts["grayscale"]} grayscale')
  parent = os.path.dirname(manual_dir)
  if os.path.basename(manual_dir) == 'manual' and os.path.basename(parent) == 'downloads':
    print('next: python -m inception_jax.tools.prepare --dataset imagenet2012 '
          f'--data_dir {os.path.dirname(parent)}')


if __name__ == '__main__':
  run_cli(lambda: main(sys.argv[1:]))
