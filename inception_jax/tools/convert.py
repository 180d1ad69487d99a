"""``python -m inception_jax.tools.convert``: torchvision, timm or Keras weights, converted.

Example::

  python -m inception_jax.tools.convert --from torchvision --model googlenet_tv \\
      --weights googlenet-1378be20.pth --out converted/googlenet
  python train.py --config=configs/googlenet_imagenet.py --workdir=runs/ft \\
      --config.model=googlenet_tv --config.init_from=converted/googlenet \\
      --config.normalization=inception --config.image_size=224

See :mod:`inception_jax.convert.torchvision` for the mapping and the input conventions.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from inception_jax.convert import keras as keras_convert
from inception_jax.convert import timm as timm_convert
from inception_jax.convert import torchvision as convert
from inception_jax import errors
from inception_jax.errors import run_cli

EPILOG = """\
input normalisation: torchvision's pretrained googlenet and inception_v3 use transform_input=True:
they take ImageNet mean/std-normalised input and rescale it internally to (x - 0.5) / 0.5, i.e.
[-1, 1]. The converted model has no such step, so it must be fed [-1, 1] input: use
--config.normalization=inception (image / 127.5 - 1), NOT 'imagenet'. The converter records this
('normalization' in the checkpoint metadata and DIR/meta.json), together with image_size (224 for
googlenet_tv, 299 for inception_v3) and eval_crop_fraction (224/256, 299/342). Weights you trained
yourself with transform_input=False expect mean/std input: pass --no-transform-input, which records
normalization='imagenet'.

files are read safely: .pth/.pt with torch.load(weights_only=True) (needs the torch extra:
pip install 'inception_jax[torch]'), .safetensors with the safetensors package; nothing else is
ever unpickled. The output is an Orbax checkpoint (DIR/checkpoints/0) that --config.init_from=DIR,
evaluation and prediction load.

--from timm: timm's inception_v3 family (the same network and state-dict keys as torchvision's,
without transform_input); --timm-name picks the variant, whose preprocessing is recorded:
inception_v3.tv_in1k / .tf_in1k / .tf_adv_in1k take normalization=inception, .gluon_in1k takes
normalization=imagenet; all 299 px, eval_crop_fraction 0.875. Pass the variant's
model.safetensors or pytorch_model.bin (Hugging Face timm/<name>).

--from keras --model inception_v3: keras.applications.InceptionV3 as a .keras or .h5 model file
or a .weights.h5 file (read with h5py and Keras's load_weights; no model code from the file is
run). The converted model is built with aux_logits=False, bn_scale=False and
avg_pool_count_include_pad=False (Keras's network), recorded in the metadata with
normalization=inception (keras.applications.inception_v3.preprocess_input), 299 px, 0.875 crop.
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = errors.ArgumentParser(
      prog='python -m inception_jax.tools.convert',
      description='Convert a torchvision GoogLeNet / Inception v3 (or timm inception_v3) state '
                  'dict into a checkpoint of this project (same logits as the source, within '
                  '1e-5 relative in float32).',
      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--from', dest='source', required=True,
                      choices=[convert.SOURCE, timm_convert.SOURCE, keras_convert.SOURCE],
                      help='where the weights come from')
  parser.add_argument('--model', required=True, choices=sorted(convert.convertible()),
                      help="this project's model name: googlenet_tv = torchvision.models."
                           'googlenet, inception_v3 = torchvision.models.inception_v3')
  parser.add_argument('--weights', required=True, metavar='FILE',
                      help='torchvision state dict (.pth/.pt, or .safetensors)')
  parser.add_argument('--out', required=True, metavar='DIR',
                      help='new (or empty) directory for the converted checkpoint')
  parser.add_argument('--no-transform-input', dest='transform_input', action='store_false',
                      help='the weights were trained with transform_input=False (mean/std '
                           "input): record normalization='imagenet' instead of 'inception'")
  parser.add_argument('--timm-name', metavar='NAME',
                      help='with --from timm: the timm model name, which decides the variant '
                           f'and its preprocessing ({", ".join(timm_convert.VARIANTS)})')
  return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_args(argv)
  if args.source == timm_convert.SOURCE:
    return _main_timm(args)
  if args.source == keras_convert.SOURCE:
    return _main_keras(args)
  if args.timm_name is not None:
    raise errors.UserError('--timm-name is only for --from timm')
  meta = convert.convert_file(args.model, args.weights, args.out,
                              transform_input=args.transform_input)
  classes = meta['num_classes']
  aux = 'with' if meta['model_overrides']['aux_logits'] else 'without'
  print(f'converted torchvision {meta["source"]["architecture"]} ({classes} classes'
        f'{"" if classes == 1000 else ", read from fc.weight"}, {aux} aux heads) -> {args.out}')
  print(f'use it with: --config.model={args.model} --config.init_from={args.out} '
        f'--config.normalization={meta["normalization"]} '
        f'--config.image_size={meta["image_size"]}'
        + ('' if meta['model_overrides']['aux_logits'] else
           ' --config.model_overrides.aux_logits=False'))
  sys.stdout.flush()
  return meta


def _main_timm(args: argparse.Namespace) -> dict:
  if not args.timm_name:
    raise errors.UserError('--from timm needs --timm-name (one of '
                           f'{", ".join(timm_convert.VARIANTS)})')
  model = timm_convert.variant(args.timm_name).model
  if args.model != model:
    raise errors.UserError(f'timm model {args.timm_name!r} converts to --model {model}, '
                           f'not {args.model}')
  meta = timm_convert.convert_file(args.timm_name, args.weights, args.out)
  aux = meta['model_overrides']['aux_logits']
  print(f'converted timm {meta["source"]["timm_name"]} ({meta["num_classes"]} classes, '
        f'{"with" if aux else "without"} aux head) -> {args.out}')
  print(f'use it with: --config.model={model} --config.init_from={args.out} '
        f'--config.normalization={meta["normalization"]} '
        f'--config.image_size={meta["image_size"]} '
        f'--config.eval_crop_fraction={meta["eval_crop_fraction"]}'
        + ('' if aux else ' --config.model_overrides.aux_logits=False'))
  sys.stdout.flush()
  return meta


def _main_keras(args: argparse.Namespace) -> dict:
  if args.timm_name is not None or not args.transform_input:
    raise errors.UserError('--timm-name and --no-transform-input are not for --from keras')
  meta = keras_convert.convert_file(args.model, args.weights, args.out)
  overrides = ' '.join(f'--config.model_overrides.{k}={v}'
                       for k, v in meta['model_overrides'].items())
  print(f'converted Keras InceptionV3 ({meta["num_classes"]} classes, no aux head) -> {args.out}')
  print(f'use it with: --config.model={args.model} --config.init_from={args.out} '
        f'--config.normalization={meta["normalization"]} '
        f'--config.image_size={meta["image_size"]} '
        f'--config.eval_crop_fraction={meta["eval_crop_fraction"]} {overrides}')
  sys.stdout.flush()
  return meta


if __name__ == '__main__':
  run_cli(main)
