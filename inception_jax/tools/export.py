r"""``python -m inception_jax.tools.export``: a checkpoint out for serving (TensorFlow SavedModel).

  python -m inception_jax.tools.export --workdir=workdirs/default --out=exported/default
  python -m inception_jax.tools.export --checkpoint=converted/inception_v3 --format=onnx \
      --out=exported/inception_v3_onnx

Exit status: 0; 2 (one-line error) for bad flags, an unknown format, a checkpoint that cannot be
read or rebuilt, or an --out that exists and is not empty. What is written (signatures, inputs,
outputs): :mod:`inception_jax.inference.export`.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from inception_jax import errors
from inception_jax.errors import run_cli
from inception_jax.inference.export import FORMATS, PLATFORMS, export


def parse_args(argv: Sequence[str] | None) -> Any:
  parser = errors.ArgumentParser(
      prog='python -m inception_jax.tools.export',
      description='Write a trained or converted checkpoint as a TensorFlow SavedModel (or ONNX).')
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--workdir', metavar='DIR', help='training --workdir')
  source.add_argument('--checkpoint', metavar='DIR',
                      help='converted --out directory, a workdir, or checkpoints/<step>')
  parser.add_argument('--out', required=True, metavar='DIR',
                      help='new (or empty) directory to write')
  parser.add_argument('--format', default='saved_model', help=' or '.join(FORMATS))
  parser.add_argument('--top_k', type=int, default=5,
                      help='classes predict_jpeg returns per image')
  parser.add_argument('--labels', metavar='FILE', help='class names, one per line')
  parser.add_argument('--data_dir', help="TFDS data dir, for the training dataset's class names")
  parser.add_argument('--platforms', default=','.join(PLATFORMS),
                      help='where the SavedModel runs, comma-separated: cpu, cuda, rocm, tpu')
  parser.add_argument('--no-ema', dest='ema', action='store_false',
                      help='export the raw parameters even when the checkpoint has EMA weights')
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  info = export(args.workdir or args.checkpoint, args.out, fmt=args.format, use_ema=args.ema,
                top_k=args.top_k, labels_file=args.labels, data_dir=args.data_dir,
                platforms=args.platforms.split(','))
  print(f'wrote {info["format"]} of {info["model"]} (step {info["step"]}, {info["weights"]} '
        f'weights, {info["image_size"]} px, {info["normalization"]} normalisation) to '
        f'{info["out"]}', flush=True)
  return info


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.WARNING)
  run_cli(main)
