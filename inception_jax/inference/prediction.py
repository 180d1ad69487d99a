r"""Classify image files with a checkpoint: the top-5 classes with their names and probabilities.

  python -m inception_jax.tools.predict --checkpoint=workdirs/default --example
  python -m inception_jax.tools.predict --checkpoint=converted/inception_v3 cat.jpg dog.png --crops=10

The checkpoint (training workdir, converted directory or ``checkpoints/<step>``; see
:mod:`inception_jax.inference.restore`) gives the model, the weights (EMA when kept), the input size and, when
recorded (metadata, or the run's ``config.json``), the normalisation and ``eval_crop_fraction``.
Images are anything ``tf.io.decode_image`` reads (JPEG, PNG, GIF's first frame, BMP, WebP), of
any size (they are resized), grey or colour.
``--crops`` takes the evaluation protocols of :mod:`inception_jax.data.crops` (softmax averaged).

Class names, first that applies: ``--labels FILE`` (one name per line, line i = class i; a
``id<TAB>name`` line uses the name); ``class_names`` in the checkpoint metadata; the label names of
the dataset the run was trained on (TFDS ``ClassLabel`` or an image folder's class folders;
ImageNet synset ids are shown as their names); the bundled ImageNet names
(``assets/imagenet2012_classes.tsv``) for 1000-class models; else the class index.

Exit status: 0; 1 when some images could not be read (each named in a warning on stderr, the
others still classified); 2 (one-line error) for bad flags, a bad checkpoint, or when no image could
be read. Files are only read, never executed or unpickled.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Any, Sequence

from inception_jax.errors import UserError

ASSETS = 'assets'
EXAMPLE_IMAGES = ('example_digit.png', 'example_photo.jpg')
IMAGENET_CLASSES = 'imagenet2012_classes.tsv'
_SYNSET = re.compile(r'^n\d{8}$')
_MAX_IMAGE_BYTES = 1 << 28  # 256 MiB: larger files are refused rather than decoded.


def asset_path(name: str) -> str:
  """Path of a bundled file in ``inception_jax/assets``."""
  import importlib.resources  # pylint: disable=g-import-not-at-top
  return str(importlib.resources.files('inception_jax').joinpath(ASSETS, name))


def example_images() -> list[str]:
  """The bundled example images (a digit PNG and a small colour JPEG)."""
  return [asset_path(name) for name in EXAMPLE_IMAGES]


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
  """The 1000 ILSVRC-2012 classes in label order as ``(synset, name)`` (bundled; see the assets
  README for sources and licenses)."""
  with open(asset_path(IMAGENET_CLASSES), encoding='utf-8') as f:
    rows = [line.rstrip('\n').split('\t') for line in f if line.strip()]
  return tuple((synset, name) for synset, name in rows)


# ----------------------------------------------------------------------------- class names


def read_labels_file(path: str, num_classes: int) -> list[str]:
  """``--labels FILE``: one name per line (``id<TAB>name`` lines give the name)."""
  try:
    with open(path, encoding='utf-8') as f:
      lines = [line.rstrip('\r\n') for line in f]
  except OSError as e:
    raise UserError(f'cannot read --labels {path}: {e.strerror or e}') from None
  except UnicodeDecodeError:
    raise UserError(f'--labels {path} is not a UTF-8 text file') from None
  while lines and not lines[-1].strip():
    lines.pop()
  if len(lines) != num_classes:
    raise UserError(f'--labels {path} has {len(lines)} lines, but the model has {num_classes} '
                    'classes; give one name per line, line i = class i')
  return [line.split('\t')[-1].strip() or str(i) for i, line in enumerate(lines)]


def _dataset_class_names(dataset: str, data_dir: str | None) -> list[str] | None:
  """Label names of ``dataset`` without reading or building its data, or None."""
  try:
    if dataset.startswith('folder:'):
      train = os.path.join(os.path.expanduser(dataset[len('folder:'):]), 'train')
      return sorted(d for d in os.listdir(train)
                    if not d.startswith('.') and os.path.isdir(os.path.join(train, d)))
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from inception_jax.data.quiet import quiet_tfds  # pylint: disable=g-import-not-at-top
    with quiet_tfds():
      if dataset == 'digits':
        from inception_jax.data import digits  # pylint: disable=g-import-not-at-top
        builder = digits.Digits(data_dir=data_dir)
      else:
        builder = tfds.builder(dataset, data_dir=data_dir)
    features = builder.info.features
    _, label_key = builder.info.supervised_keys or ('image', 'label')
    return list(features[label_key].names)
  except Exception:  # noqa: BLE001 - names are a nicety: fall back to the next source
    return None


def class_names(meta: dict[str, Any], *, labels_file: str | None = None,
                data_dir: str | None = None) -> list[str]:
  """Names of the model's classes (see the module docstring for the order of sources)."""
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top
  num_classes = int(meta['num_classes'])
  if labels_file:
    return read_labels_file(labels_file, num_classes)
  names = meta.get('class_names')
  if isinstance(names, list) and len(names) == num_classes:
    return [str(n) for n in names]
  settings = restore.preprocessing_settings(meta)
  dataset = settings['dataset']
  names = None
  if isinstance(dataset, str) and dataset:
    names = _dataset_class_names(dataset, data_dir or settings['data_dir'])
  if names and len(names) == num_classes:
    if all(_SYNSET.match(n) for n in names):
      human = dict(imagenet_classes())
      names = [human.get(n, n) for n in names]
    return names
  if num_classes == 1000:
    return [name for _, name in imagenet_classes()]
  return [str(i) for i in range(num_classes)]


# ----------------------------------------------------------------------------- prediction

# Leading bytes of the formats tf.io.decode_image reads.
_MAGIC = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'GIF87a', 'GIF'),
          (b'GIF89a', 'GIF'), (b'BM', 'BMP'))


def _image_format(data: bytes) -> str | None:
  """The image format ``data`` starts like, or None."""
  if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
    return 'WebP'
  return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def _unreadable(path: str, reason: str) -> UserError:
  return UserError(f'cannot read {path} as an image ({reason})')


def _load_views(path: str, views_fn: Any) -> Any:
  """``[views, S, S, 3]`` views of one image file (uint8 pixels, ``crops.make_views_fn``); a UserError saying in our words why
  when it is not a readable image (TensorFlow's op names stay out of it)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    if os.path.getsize(path) > _MAX_IMAGE_BYTES:
      raise _unreadable(path, f'larger than {_MAX_IMAGE_BYTES >> 20} MiB')
    with open(path, 'rb') as f:
      data = f.read()
  except IsADirectoryError:
    raise _unreadable(path, 'it is a directory') from None
  except OSError as e:
    raise _unreadable(path, str(e.strerror or e)) from None
  if not data:
    raise _unreadable(path, 'the file is empty')
  try:
    return views_fn(tf.constant(data)).numpy()
  except (tf.errors.OpError, ValueError):
    kind = _image_format(data)
    raise _unreadable(path, f'damaged or truncated {kind} data' if kind else
                      'not a JPEG, PNG, GIF, BMP or WebP file') from None


def predict(checkpoint: str, images: Sequence[str], *, top_k: int = 5, crops: int = 1,
            labels_file: str | None = None, data_dir: str | None = None,
            image_size: int | None = None, crop_fraction: float | None = None,
            use_ema: bool = True, warn: Any = None) -> list[dict[str, Any]]:
  """Top-``top_k`` classes per image: ``[{'image', 'top': [(index, name, probability), ...]}``
  or ``{'image', 'error'}`` for an unreadable one]``; UserError when none is readable."""
  # Flag checks first: they need none of the heavy imports below.
  if crops not in (1, 10, 144) or isinstance(crops, bool):  # crops.PROTOCOLS
    raise UserError(f'--crops must be 1, 10 or 144, got {crops!r}')
  if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
    raise UserError(f'--top_k must be a positive integer, got {top_k!r}')
  if not images:
    raise UserError('give at least one IMAGE file (or --example for the bundled ones)')
  if crop_fraction is not None and not 0 < crop_fraction <= 1:
    raise UserError(f'--crop_fraction must be in (0, 1], got {crop_fraction!r}')
  import numpy as np  # pylint: disable=g-import-not-at-top
  from inception_jax.data import crops as crops_lib  # pylint: disable=g-import-not-at-top
  from inception_jax.inference import evaluation as evaluate  # pylint: disable=g-import-not-at-top
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top

  warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
  crops = crops_lib.check_protocol(crops)
  model, variables, meta = restore.load_for_inference(checkpoint, use_ema=use_ema)
  size = int(image_size or meta['image_size'])
  models.check_input_size(model, size, f'image_size={size}', meta['model'])
  settings = restore.preprocessing_settings(meta)
  fraction = settings['eval_crop_fraction'] if crop_fraction is None else crop_fraction
  if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
    raise UserError(f'--crop_fraction must be in (0, 1], got {fraction!r}')
  names = class_names(meta, labels_file=labels_file, data_dir=data_dir)
  views_config = {'image_size': size, 'eval_crop_fraction': float(fraction),
                  'normalization': settings['normalization'],
                  'random_flip': settings['random_flip']}
  views_fn = crops_lib.make_views_fn(crops, views_config)
  num_views = crops_lib.num_views(crops, views_config)

  results, loaded = [], []
  for path in images:
    try:
      views = _load_views(path, views_fn)
    except UserError as e:
      results.append({'image': path, 'error': str(e)})
      continue
    loaded.append((len(results), views))
    results.append({'image': path})
  failed = [r['error'] for r in results if 'error' in r]
  if not loaded and len(failed) == 1:
    raise UserError(failed[0])  # said once, as the error
  for message in failed:
    warn(f'warning: {message}; skipped')
  if not loaded:
    raise UserError(f'none of the {len(images)} images could be read (reasons above)')

  classifier = evaluate.Classifier(model, variables, normalization=settings['normalization'])
  chunk = min(len(loaded), max(1, 256 // num_views))  # per call; every call the same shape
  k = min(top_k, model.num_classes)
  for start in range(0, len(loaded), chunk):
    group = loaded[start:start + chunk]
    views = np.stack([v for _, v in group])
    if len(group) < chunk:
      views = np.concatenate([views, np.zeros((chunk - len(group),) + views.shape[1:],
                                              views.dtype)])
    probs = classifier(views.reshape((-1,) + views.shape[2:])).reshape(chunk, num_views, -1)
    probs = probs.mean(axis=1)
    for row, (index, _) in enumerate(group):
      order = np.argsort(-probs[row], kind='stable')[:k]
      results[index]['top'] = [(int(c), names[c], float(probs[row, c])) for c in order]
  return results


def format_results(results: list[dict[str, Any]]) -> str:
  lines = []
  for r in results:
    if 'error' in r:
      continue
    lines.append(r['image'])
    for rank, (index, name, p) in enumerate(r['top'], 1):
      lines.append(f'  {rank}. {100 * p:6.2f}%  {name}  [{index}]')
  return '\n'.join(lines)
