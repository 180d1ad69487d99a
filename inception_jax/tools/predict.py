r"""``python -m inception_jax.tools.predict``: the top classes of image files, with a checkpoint.

  python -m inception_jax.tools.predict --checkpoint=workdirs/default --example
  python -m inception_jax.tools.predict --checkpoint=converted/inception_v3 cat.jpg dog.png --crops=10

Exit status: 0; 1 when some images could not be read (each named in a warning on stderr, the
others still classified); 2 (one-line error) for bad flags, a bad checkpoint, or when no image could
be read. What is computed: :mod:`inception_jax.inference.prediction`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from inception_jax import errors
from inception_jax.errors import run_cli
from inception_jax.inference.prediction import example_images, format_results, predict


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = errors.ArgumentParser(
      prog='python -m inception_jax.tools.predict',
      description='Print the top classes of each image with a trained or converted checkpoint.')
  parser.add_argument('images', nargs='*', metavar='IMAGE',
                      help='image files (JPEG, PNG, GIF, BMP, WebP)')
  parser.add_argument('--checkpoint', required=True, metavar='DIR',
                      help='training --workdir, converted --out directory, or checkpoints/<step>')
  parser.add_argument('--example', action='store_true',
                      help='also classify the bundled example images (a digit, a small photo)')
  parser.add_argument('--top_k', type=int, default=5, help='classes to print per image')
  parser.add_argument('--crops', type=int, default=1,
                      help='1 (centre crop), 10 or 144 (GoogLeNet) views, softmax averaged')
  parser.add_argument('--labels', metavar='FILE', help='class names, one per line')
  parser.add_argument('--data_dir', help="TFDS data dir, for the training dataset's class names")
  parser.add_argument('--image_size', type=int, default=0,
                      help="input side in pixels (0 = the checkpoint's)")
  parser.add_argument('--crop_fraction', type=float, default=None,
                      help='centre-crop fraction (default: recorded with the checkpoint, or 0.875)')
  parser.add_argument('--no-ema', dest='ema', action='store_false',
                      help='use the raw parameters even when the checkpoint has EMA weights')
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
  args = parse_args(argv)
  images = list(args.images) + (example_images() if args.example else [])
  results = predict(args.checkpoint, images, top_k=args.top_k, crops=args.crops,
                    labels_file=args.labels, data_dir=args.data_dir,
                    image_size=args.image_size or None, crop_fraction=args.crop_fraction,
                    use_ema=args.ema)
  print(format_results(results), flush=True)
  return results


def _cli() -> None:
  results = run_cli(main)
  if results and any('error' in r for r in results):
    sys.exit(1)


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  _cli()
