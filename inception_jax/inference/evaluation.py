r"""Top-1 / top-5 of a checkpoint on a whole evaluation split, with 1, 10 or 144 crops.

  python -m inception_jax.tools.evaluate --config=configs/default.py --checkpoint=workdirs/default
  python -m inception_jax.tools.evaluate --config=configs/googlenet_imagenet.py \
      --checkpoint=converted/googlenet --crops=144 --config.data_dir=/data/tfds --json=eval.json

The checkpoint (a training workdir, a converted directory or one ``checkpoints/<step>``; see
:mod:`inception_jax.inference.restore`) decides the model, its weights (EMA when kept) and the input
size; the config decides the dataset (``dataset``, ``data_dir``, ``eval_split``),
``eval_crop_fraction`` and ``eval_batch_size``. ``normalization`` is a property of the weights: the
checkpoint's (metadata or its run's ``config.json``) wins over the config's, with a warning when
they differ.

Crop protocols (:mod:`inception_jax.data.crops`): 1 = the input pipeline's centre crop; 10 = the
corners, the centre and mirrors (Krizhevsky et al. 2012); 144 = the GoogLeNet paper's protocol
(Szegedy et al. 2015, Sec. 7). The mirrored views only when the config's ``random_flip`` is on (a
model trained without mirror images, like the digits quick start's, gets 5 or 72 views); the first
line printed says which views are used. Softmax probabilities are averaged over an image's views.
Every example of the split is counted exactly once: the last batch is padded and the padding
masked, and ``num_examples`` in the result is checked against the split size.

Progress: a bar with an ETA when stderr is a terminal, else a plain line every tenth of the batches
or 30 s (batches done / total, elapsed, ETA).

Execution: every local device of every process. Each process reads its own share of the split
(``input_pipeline.create_eval_dataset`` with its index and count: padded with masked examples to
the same number of batches everywhere), feeds its ``batch_size / processes`` examples x views
images per step through one jitted ``apply`` whose batch axis is sharded over its local devices
(the batch is padded to a multiple of the device count), and counts its hits on the host. A
``process_allgather`` of the per-process running ``(top-1, top-5, examples)`` counts (before the
first batch, about 100 times a pass, after the last) sums them, so every example is counted once
and the figures equal a one-process run's; the gathers along the way make a dead peer stop the
others at once. Only process 0 logs.
The program is compiled once per image count and reused by every later call with the same
model. ``batch_size`` (over all processes) defaults to ``eval_batch_size // views`` (at least 1),
i.e. about ``eval_batch_size`` images per step whatever the protocol.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable, Iterator

from inception_jax import errors
from inception_jax.errors import UserError



# ----------------------------------------------------------------------------- model execution


@functools.lru_cache(maxsize=8)
def _softmax_program(model: Any, devices: tuple[Any, ...], normalization: str
                     ) -> tuple[Callable, Any, Any]:
  """``(jitted fn(variables, images) -> softmax, data sharding, replicated sharding)``, cached
  per (model, devices, normalization) so repeated evaluations reuse the compiled program. uint8
  images are normalised inside it, on the devices (as in training)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top
  from inception_jax.models.inputs import normalize_images  # pylint: disable=g-import-not-at-top

  mesh = Mesh(np.asarray(devices), ('data',))
  data = NamedSharding(mesh, PartitionSpec('data'))
  replicated = NamedSharding(mesh, PartitionSpec())

  def probabilities(variables, images):
    images = normalize_images(images, normalization, getattr(model, 'dtype', jnp.float32))
    logits = model.apply(variables, images, train=False).logits
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

  fn = jax.jit(probabilities, in_shardings=(replicated, data), out_shardings=data)
  return fn, data, replicated


class Classifier:
  """Softmax probabilities of a model on all local devices: ``clf(images [N, S, S, 3]) -> [N, K]``.

  ``images`` are uint8 pixels (normalised on the devices with ``normalization``, the weights'
  setting) or already-normalised floats. ``N`` is padded to a multiple of the device count (the
  padding's outputs are dropped). ``submit`` returns at once with a handle; ``result`` waits, so
  host work overlaps the devices.
  """

  def __init__(self, model: Any, variables: Any, devices: Any = None,
               normalization: str = 'inception'):
    import jax  # pylint: disable=g-import-not-at-top
    self.devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
    self._fn, self._data, replicated = _softmax_program(model, self.devices, normalization)
    self._variables = jax.device_put(variables, replicated)

  def submit(self, images: Any) -> tuple[Any, int]:
    import jax  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    images = np.asarray(images)
    if images.dtype != np.uint8:
      images = images.astype(np.float32)
    n = images.shape[0]
    pad = -n % len(self.devices)
    if pad:
      images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    return self._fn(self._variables, jax.device_put(images, self._data)), n

  @staticmethod
  def result(handle: tuple[Any, int]) -> Any:
    import numpy as np  # pylint: disable=g-import-not-at-top
    out, n = handle
    return np.asarray(out)[:n]

  def __call__(self, images: Any) -> Any:
    return self.result(self.submit(images))


def topk_correct(probs: Any, labels: Any, k: int) -> Any:
  """Per example, whether the label is among the ``k`` most probable classes (ties count for the
  label, as :func:`inception_jax.training.losses.topk_correct`)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  label_prob = np.take_along_axis(probs, labels[:, None].astype(np.int64), axis=-1)
  rank = np.sum(probs > label_prob, axis=-1)
  return (rank < min(k, probs.shape[-1])) & np.isfinite(label_prob[:, 0])


# ----------------------------------------------------------------------------- data


def eval_config(config: Any, meta: dict[str, Any], *, image_size: int | None = None,
                log: Callable[[str], None] = print) -> Any:
  """A copy of ``config`` with the checkpoint's image size and normalisation."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top

  if isinstance(config, ml_collections.ConfigDict):
    config = config.copy_and_resolve_references()
  else:
    config = ml_collections.ConfigDict(dict(config))
  with config.unlocked():
    config.image_size = int(image_size or meta['image_size'])
    recorded = meta.get('normalization') or restore.workdir_config(meta).get('normalization')
    if recorded and recorded != config.get('normalization', 'inception'):
      log(f'warning: using normalization={recorded!r} recorded with the checkpoint instead of the '
          f"config's {config.get('normalization')!r}")
      config.normalization = recorded
  schema.validate_config(config, check_model=False)  # the input pipeline reads it unchecked
  return config


def examples_per_batch(config: Any, crops: int, batch_size: int | None, num_devices: int,
                       num_processes: int = 1) -> int:
  """This process's examples per step: its share of ``batch_size`` (over all processes) or of
  ``eval_batch_size // crops``, rounded up so its ``examples x crops`` images split evenly over
  its ``num_devices`` local devices (``crops``: views per example,
  :func:`inception_jax.data.crops.num_views`)."""
  import math  # pylint: disable=g-import-not-at-top
  if batch_size is None or batch_size == 0:
    eval_batch = int(config.get('eval_batch_size') or config.get('global_batch_size') or 1)
    batch_size = max(1, eval_batch // crops)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
    raise UserError(f'--batch_size must be a positive integer (0 = eval_batch_size // crops), '
                    f'got {batch_size!r}')
  step = num_devices // math.gcd(crops, num_devices)
  local = -(-batch_size // num_processes)
  return -(-local // step) * step


def views_dataset(config: Any, crops: int, batch: int, *, process_index: int = 0,
                  process_count: int = 1) -> tuple[Any, Any]:
  """``(tf.data.Dataset, DatasetInfo)``: this process's share of the eval split once, as batches
  of ``{'image': [batch, views, S, S, 3], 'label': int32 [batch], 'mask': bool [batch]}``
  (``views = crops.num_views(crops, config)``), padded with masked zero examples to the number of
  batches of the largest share, so every process yields as many (the input pipeline's
  evaluation dataset with the protocol's views in place of its centre crop)."""
  from inception_jax.data import crops as crops_lib  # pylint: disable=g-import-not-at-top
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top

  config = config.copy_and_resolve_references()
  config.eval_batch_size = batch * process_count  # the pipeline splits a global batch
  config.half_precision = False  # inference computes in float32 (restore.load_for_inference)
  ds = input_pipeline.create_eval_dataset(config, process_index=process_index,
                                          process_count=process_count,
                                          views_fn=crops_lib.make_views_fn(crops, config))
  return ds, input_pipeline.get_dataset_info(config)


def combine_counts(counts: Any) -> Any:
  """Per-process counts ``[n]`` -> ``[processes, n]``, gathered from every process (a collective:
  every process calls it once, after its last batch)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  counts = np.asarray(counts, np.int32)
  if jax.process_count() == 1:
    return counts[None]
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(counts)).reshape(jax.process_count(), -1)


def peer_failure_message(e: BaseException) -> str | None:
  """One line when ``e`` (raised in a multi-process evaluation) says another process is gone,
  else None. The caller exits at once: ``jax.distributed``'s shutdown barrier would wait for the
  dead process until its heartbeat times out, then abort."""
  import jax  # pylint: disable=g-import-not-at-top
  from inception_jax.training import integrity  # pylint: disable=g-import-not-at-top
  if not integrity.is_peer_failure(e):
    return None
  first = errors.first_line(e)
  return (f'process {jax.process_index()} of {jax.process_count()}: another process of this job '
          f'failed or was killed ({first}); nothing was evaluated; start all '
          f'{jax.process_count()} processes again with the same command')


# ----------------------------------------------------------------------------- evaluation


def evaluate(config: Any, checkpoint: str, *, crops: int = 1, batch_size: int | None = None,
             image_size: int | None = None, use_ema: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
  """Evaluates ``checkpoint`` on ``config``'s eval split; returns the result dict (see ``main``).

  ``log`` gets the views line, warnings and, off a terminal, the progress lines, on process 0
  only. In a multi-process job every process calls it with the same arguments and gets the same
  result (the counts are combined by a collective).
  """
  import math  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from inception_jax.data import crops as crops_lib  # pylint: disable=g-import-not-at-top
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  from inception_jax import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from inception_jax.inference import restore  # pylint: disable=g-import-not-at-top

  from inception_jax.data.source_base import max_share  # pylint: disable=g-import-not-at-top

  crops = crops_lib.check_protocol(crops)
  tfds.disable_progress_bar()
  process_index, process_count = jax.process_index(), jax.process_count()
  if process_index:
    log = lambda _: None  # noqa: E731  # one copy of every line, from process 0
  if image_size is not None and image_size != 0 and (
      isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 0):
    raise UserError(f'--image_size must be a positive integer (0 = the checkpoint\'s), '
                    f'got {image_size!r}')
  model, variables, meta = restore.load_for_inference(checkpoint, use_ema=use_ema)
  config = eval_config(config, meta, image_size=image_size, log=log)
  models.check_input_size(model, config.image_size, f'image_size={config.image_size}',
                          meta['model'])
  devices = jax.local_devices()
  views = crops_lib.num_views(crops, config)
  batch = examples_per_batch(config, views, batch_size, len(devices), process_count)
  ds, info = views_dataset(config, crops, batch, process_index=process_index,
                           process_count=process_count)
  if info.num_classes > model.num_classes:
    raise UserError(f'checkpoint {meta["checkpoint"]} is a {model.num_classes}-class '
                    f'{meta["model"]}, but dataset {info.name!r} has {info.num_classes} classes; '
                    'evaluate it on the dataset it was trained for')
  if info.num_classes < model.num_classes:
    log(f'warning: the model has {model.num_classes} classes, dataset {info.name!r} '
        f'{info.num_classes}; labels index the first {info.num_classes}')
  trained_on = meta.get('dataset')
  if trained_on and trained_on != info.name:
    log(f'warning: the checkpoint was trained on {trained_on!r}, evaluating on {info.name!r}')

  classifier = Classifier(model, variables, devices, normalization=config.normalization)
  size = config.image_size
  # Compile before the first gather: from the views line on, a process only runs batches and
  # gathers, so a dead peer fails a gather within a batch or two, long before the coordination
  # service's heartbeat timeout would abort the survivors (a compile can outlast that timeout).
  image_dtype = ds.element_spec['image'].dtype.as_numpy_dtype
  classifier(np.zeros((batch * views, size, size, 3), image_dtype))
  per_process = combine_counts([0, 0, 0])  # every process is here: the gathers' connections open
  description = crops_lib.describe_views(crops, config)
  log(f'views: {description}')
  totals = {'top1': 0, 'top5': 0, 'count': 0}
  start = time.perf_counter()
  num_batches = math.ceil(max_share(info.num_eval_examples, process_count) / batch)
  progress = progress_lib.Progress(num_batches,
                                   f'evaluating {info.name}[{info.eval_split}]', log=log)

  # Every process runs the same number of batches, so all gather the running counts after the
  # same ones: about 100 times a pass (and once before the views line, which opens the
  # connections). A dead peer then fails the next gather at once, with a one-line error, rather
  # than the coordination service aborting the survivors after its heartbeat timeout.
  gather_every = max(1, num_batches // 100)
  done = 0

  def finish(pending):
    nonlocal per_process, done
    handle, labels, mask, b = pending
    probs = classifier.result(handle).reshape(b, views, -1).mean(axis=1)
    totals['top1'] += int(np.sum(topk_correct(probs, labels, 1) & mask))
    totals['top5'] += int(np.sum(topk_correct(probs, labels, 5) & mask))
    totals['count'] += int(np.sum(mask))
    done += 1
    if done % gather_every == 0 or done == num_batches:
      per_process = combine_counts([totals['top1'], totals['top5'], totals['count']])
    progress.update()

  pending = None
  batches: Iterator[dict[str, Any]] = iter(tfds.as_numpy(ds))
  try:
    for example_batch in batches:
      b = example_batch['image'].shape[0]
      handle = classifier.submit(example_batch['image'].reshape(b * views, size, size, 3))
      if pending is not None:
        finish(pending)
      pending = (handle, example_batch['label'], example_batch['mask'].astype(bool), b)
    if pending is not None:
      finish(pending)
  finally:
    progress.close()
  if done != num_batches:
    raise RuntimeError(f'the eval pipeline gave {done} batches, expected {num_batches}')
  seconds = time.perf_counter() - start

  hits1, hits5, count = (int(x) for x in per_process.sum(axis=0))
  if count != info.num_eval_examples:
    raise RuntimeError(f'evaluated {count} examples, but split {info.eval_split!r} has '
                       f'{info.num_eval_examples}')
  top1, top5 = hits1 / max(count, 1), hits5 / max(count, 1)
  return {
      'checkpoint': meta['checkpoint'],
      'step': meta['step'],
      'layout': meta['layout'],
      'model': meta['model'],
      'weights': meta['weights'],
      'dataset': info.name,
      'split': info.eval_split,
      'crops': crops,
      'views': views,
      'views_description': description,
      'image_size': size,
      'normalization': config.normalization,
      'eval_crop_fraction': float(config.get('eval_crop_fraction', 0.875)),
      'num_examples': count,
      'top1': top1,
      'top5': top5,
      'top1_error': 1.0 - top1,
      'top5_error': 1.0 - top5,
      'examples_per_batch': batch * process_count,
      'devices': jax.device_count(),
      'processes': process_count,
      'examples_per_process': [int(n) for n in per_process[:, 2]],
      'seconds': seconds,
  }


def format_result(r: dict[str, Any]) -> str:
  """The one-line summary the CLI prints."""
  weights = 'EMA weights' if r['weights'] == 'ema' else 'weights'
  views = r.get('views', r['crops'])
  crops = '1 crop' if views == 1 else f'{views} crops'
  return (f'{r["model"]} step {r["step"]} ({weights}) on {r["dataset"]}[{r["split"]}], {crops} at '
          f'{r["image_size"]} px: top-1 {100 * r["top1"]:.2f}% (error {100 * r["top1_error"]:.2f}%)'
          f', top-5 {100 * r["top5"]:.2f}% (error {100 * r["top5_error"]:.2f}%) over '
          f'{r["num_examples"]} examples in {r["seconds"]:.1f} s on {r["devices"]} device(s)'
          + (f' in {r["processes"]} processes' if r.get('processes', 1) > 1 else ''))


def write_json(path: str, result: dict[str, Any]) -> None:
  try:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, 'w') as f:
      json.dump(result, f, indent=2, sort_keys=True)
      f.write('\n')
  except OSError as e:
    raise UserError(f'cannot write --json {path}: {e.strerror or e}') from None
