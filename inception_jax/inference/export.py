"""A checkpoint out for serving: a TensorFlow SavedModel that runs without JAX.

  python -m inception_jax.tools.export --workdir=workdirs/default --out=exported/default

The checkpoint (any layout :func:`~inception_jax.inference.restore.load_for_inference` reads; EMA
weights when kept) becomes a SavedModel with two signatures:

* ``serving_default``: ``images`` float32 [N, S, S, 3], already normalised as the model expects
  (``S`` = the checkpoint's image size, ``N`` any) -> ``logits`` and ``probabilities`` [N, K].
* ``predict_jpeg``: ``images`` tf.string [N] of encoded JPEG, PNG, GIF, BMP or WebP files ->
  ``classes`` int32 [N, k], ``probabilities`` float32 [N, k] and ``class_names`` tf.string [N, k],
  the top ``k`` (5, or K if fewer) most probable first. ``N`` may be 0 in both signatures. The
  bytes go through the model's own 1-crop evaluation view
  (:func:`inception_jax.data.preprocessing.pixels_for_eval`: decode, centre crop of the recorded
  ``eval_crop_fraction``, resize, round to uint8; then the recorded normalisation, in float32),
  the same numbers ``tools.predict`` gives the model (it normalises on the device), so both give
  the same classes. Bytes that do not start like one of those formats fail the call with an
  ``InvalidArgumentError`` whose message says what the signature takes and lists the rejected
  indices ("assertion failed: [predict_jpeg takes encoded JPEG, ...; these indices are not such
  files:] [1 2]"); bytes that start like an image but are damaged fail in TensorFlow's decoder
  with its own message ("Invalid JPEG data, size 200").

The network is traced with :func:`inception_jax.lowering.plain` (Flax/XLA layers as they come: the
same numbers as the backend-tuned lowerings, and nothing specific to the exporting machine), aux
heads off, and lowered by ``jax2tf`` with native serialization (StableHLO inside the SavedModel) for
``platforms`` (CPU and CUDA by default) with a symbolic batch dimension. The weights are SavedModel
variables, not constants in the program, so large networks stay under protobuf's 2 GB limit.
``OUT/assets.extra/inception_jax.json`` records where the model came from and its preprocessing.

``--format onnx`` writes ``OUT/model.onnx`` through ``jax2onnx`` (optional: ``pip install jax2onnx
onnxruntime``): input ``images`` float32 [N, S, S, 3] (normalised, NHWC), outputs ``logits`` and
``probabilities``; the bytes signature has no ONNX counterpart (preprocess with
``preprocess_for_eval`` or ``OUT/inception_jax.json``'s settings). Its max pools are traced as a
running maximum of strided slices (the lowerings' ``sliced_eval_pool``, the same numbers):
``jax2onnx`` turns ``lax.reduce_window`` into an ONNX ``MaxPool`` whose ``kernel_shape`` covers all
four NHWC dimensions ([1, 3, 3, 1]), which onnxruntime rejects ("MaxPool ... Unsupported pooling
size").
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Sequence

from inception_jax.errors import UserError

FORMATS = ('saved_model', 'onnx')
PLATFORMS = ('cpu', 'cuda')
KNOWN_PLATFORMS = ('cpu', 'cuda', 'rocm', 'tpu')
IMAGES_SIGNATURE = 'serving_default'
BYTES_SIGNATURE = 'predict_jpeg'
INFO_FILE = os.path.join('assets.extra', 'inception_jax.json')
# Leading bytes of the formats preprocessing's decoders read (WebP: 'RIFF' at 0, 'WEBP' at 8).
_MAGIC = ((0, b'\xff\xd8\xff'), (0, b'\x89PNG\r\n\x1a\n'), (0, b'GIF87a'), (0, b'GIF89a'),
          (0, b'BM'), (8, b'WEBP'))
NOT_AN_IMAGE = (f'{BYTES_SIGNATURE} takes encoded JPEG, PNG, GIF, BMP or WebP files as a tf.string '
                '[N] batch; these indices are not such files:')
ONNX_FILE = 'model.onnx'
ONNX_INFO_FILE = 'inception_jax.json'


def check_format(fmt: str) -> str:
  """``fmt`` if this module can write it, else a one-line UserError."""
  if fmt not in FORMATS:
    raise UserError(f'unknown --format {fmt!r}; use one of {", ".join(FORMATS)}')
  if fmt == 'onnx':
    import importlib.util  # pylint: disable=g-import-not-at-top
    if importlib.util.find_spec('jax2onnx') is None:
      raise UserError('--format onnx needs the jax2onnx package: pip install jax2onnx onnxruntime '
                      '(onnxruntime to run the file)')
  return fmt


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
  out = tuple(p.strip() for p in platforms if p.strip())
  bad = [p for p in out if p not in KNOWN_PLATFORMS]
  if not out or bad:
    raise UserError(f'--platforms must name some of {", ".join(KNOWN_PLATFORMS)} '
                    f'(got {",".join(platforms)!r})')
  return out


def check_out_dir(out: str | os.PathLike) -> str:
  """The absolute ``--out``: it must not exist, or be an empty directory (nothing overwritten)."""
  out = os.path.abspath(os.path.expanduser(os.fspath(out)))
  if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    raise UserError(f'--out {out} already exists and is not an empty directory; choose a new '
                    'directory')
  parent = os.path.dirname(out)
  if os.path.exists(parent) and not os.access(parent, os.W_OK):
    raise UserError(f'cannot write --out {out}: {parent} is not writable')
  return out


def _image_check(images: Any) -> Any:
  """An assertion that every element of ``images`` starts like a supported image file."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # Padded: substr fails on a position past the end of a short string.
  padded = tf.strings.join([images, b'\0' * 12])
  ok = tf.zeros_like(images, dtype=tf.bool)
  for offset, magic in _MAGIC:
    ok |= tf.equal(tf.strings.substr(padded, offset, len(magic)), magic)
  bad = tf.reshape(tf.where(tf.logical_not(ok)), [-1])
  return tf.debugging.Assert(tf.reduce_all(ok), [NOT_AN_IMAGE, bad], summarize=16)


def _saved_model_module(model: Any, variables: Any, names: list[str], settings: dict[str, Any],
                        size: int, top_k: int, platforms: tuple[str, ...]) -> Any:
  """A ``tf.Module`` holding the weights as variables and the two signatures' functions."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from inception_jax.data import preprocessing  # pylint: disable=g-import-not-at-top

  def logits_fn(weights, images):
    return model.apply(weights, images, train=False).logits

  converted = jax2tf.convert(
      logits_fn, polymorphic_shapes=[None, f'(b, {size}, {size}, 3)'], with_gradient=False,
      native_serialization_platforms=platforms)
  module = tf.Module()
  weights = tf.nest.map_structure(lambda x: tf.Variable(x, trainable=False),
                                  jax.device_get(variables))
  module.weights = tf.nest.flatten(weights)
  image_spec = tf.TensorSpec([None, size, size, 3], tf.float32, name='images')

  num_classes = len(names)

  @tf.function(autograph=False, input_signature=[image_spec])
  def logits(images):
    # The exported program asserts a batch of at least 1; an empty batch gets an empty answer.
    return tf.cond(tf.shape(images)[0] > 0, lambda: converted(weights, images),
                   lambda: tf.zeros([0, num_classes], tf.float32))

  @tf.function(autograph=False, input_signature=[image_spec])
  def predict_images(images):
    out = logits(images)
    return {'logits': out, 'probabilities': tf.nn.softmax(out, axis=-1)}

  view = {'image_size': size, 'eval_crop_fraction': float(settings['eval_crop_fraction']),
          'normalization': settings['normalization']}
  class_names = tf.constant(names, tf.string)

  @tf.function(autograph=False,
               input_signature=[tf.TensorSpec([None], tf.string, name='images')])
  def predict_jpeg(images):
    with tf.control_dependencies([_image_check(images)]):
      images = tf.identity(images)
    # Rounded to uint8 like every other caller's view (models.inputs.normalize_images), then
    # normalised here in float32: the same numbers as the device's normalisation.
    pixels = tf.map_fn(lambda image: preprocessing.pixels_for_eval(image, view), images,
                       fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))
    batch = preprocessing.normalize(tf.cast(pixels, tf.float32), view['normalization'])
    probabilities = tf.nn.softmax(logits(batch), axis=-1)
    top = tf.math.top_k(probabilities, k=top_k, sorted=True)
    return {'classes': top.indices, 'probabilities': top.values,
            'class_names': tf.gather(class_names, top.indices)}

  module.logits = logits
  module.predict_images = predict_images
  module.predict_jpeg = predict_jpeg
  return module


def _write_onnx(model: Any, variables: Any, size: int, directory: str) -> None:
  """``directory/model.onnx``: images -> logits, probabilities, with a symbolic batch."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax2onnx  # pylint: disable=g-import-not-at-top

  def predict_images(images):
    logits = model.apply(variables, images, train=False).logits
    return logits, jax.nn.softmax(logits, axis=-1)

  jax2onnx.to_onnx(predict_images, [('N', size, size, 3)], model_name='inception_jax',
                   input_names=['images'], output_names=['logits', 'probabilities'],
                   return_mode='file', output_path=os.path.join(directory, ONNX_FILE))


def _export_lowering(fmt: str) -> Any:
  """Flax/XLA's layers as they come (nothing specific to the exporting machine); for ONNX, max
  pools as strided slices, which the converter maps to ops onnxruntime runs (module docstring)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  from inception_jax.lowering import max_pool  # pylint: disable=g-import-not-at-top
  if fmt == 'onnx':
    return dataclasses.replace(lowering.plain(), max_pool=max_pool.gather_gradient,
                               sliced_eval_pool=True)
  return lowering.plain()


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, *, fmt: str = 'saved_model',
           use_ema: bool = True, top_k: int = 5, labels_file: str | None = None,
           data_dir: str | None = None,
           platforms: Sequence[str] = PLATFORMS) -> dict[str, Any]:
  """Writes the checkpoint as ``fmt`` under ``out`` (module docstring); returns what was written.

  Raises:
    UserError: unknown format, ``out`` exists and is not empty, a checkpoint that cannot be read
      or whose model cannot be rebuilt, bad ``top_k`` / ``platforms`` / labels.
  """
  check_format(fmt)
  if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
    raise UserError(f'--top_k must be a positive integer, got {top_k!r}')
  platforms = check_platforms(platforms)
  out = check_out_dir(out)
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  from inception_jax.inference import prediction  # pylint: disable=g-import-not-at-top
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top

  model, variables, meta = restore.load_for_inference(checkpoint, use_ema=use_ema)
  size = int(meta['image_size'])
  models.check_input_size(model, size, f'image_size={size}', meta['model'])
  model = model.clone(lowering=_export_lowering(fmt))
  settings = restore.preprocessing_settings(meta)
  names = prediction.class_names(meta, labels_file=labels_file, data_dir=data_dir)
  k = min(top_k, int(meta['num_classes']))
  info = {
      'format': fmt, 'model': meta['model'], 'model_overrides': meta.get('model_overrides') or {},
      'num_classes': int(meta['num_classes']), 'image_size': size, 'step': meta['step'],
      'checkpoint': meta['checkpoint'], 'weights': meta['weights'],
      'normalization': settings['normalization'],
      'eval_crop_fraction': float(settings['eval_crop_fraction']), 'top_k': k,
      'class_names': names,
  }
  if fmt == 'saved_model':
    info.update(platforms=list(platforms), signatures=[IMAGES_SIGNATURE, BYTES_SIGNATURE])

  parent = os.path.dirname(out)
  os.makedirs(parent, exist_ok=True)
  # Written next to OUT and renamed at the end: a failed export leaves no half-written OUT.
  staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(out)}.', dir=parent)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0o700 would make OUT private
  try:
    if fmt == 'onnx':
      _write_onnx(model, variables, size, staging)
      info_file = ONNX_INFO_FILE
    else:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      module = _saved_model_module(model, variables, names, settings, size, k, platforms)
      tf.saved_model.save(module, staging, signatures={
          IMAGES_SIGNATURE: module.predict_images, BYTES_SIGNATURE: module.predict_jpeg})
      info_file = INFO_FILE
    os.makedirs(os.path.dirname(os.path.join(staging, info_file)), exist_ok=True)
    with open(os.path.join(staging, info_file), 'w', encoding='utf-8') as f:
      json.dump(info, f, indent=2)
      f.write('\n')
    if os.path.isdir(out):
      os.rmdir(out)  # empty (checked above)
    os.replace(staging, out)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return dict(info, out=out)


__all__ = ['BYTES_SIGNATURE', 'FORMATS', 'IMAGES_SIGNATURE', 'INFO_FILE', 'NOT_AN_IMAGE',
           'ONNX_FILE', 'ONNX_INFO_FILE', 'PLATFORMS', 'check_format', 'check_out_dir',
           'check_platforms', 'export']
