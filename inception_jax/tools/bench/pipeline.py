"""The real training input pipeline (tf.data decoding and augmentation) timed alone on the host.

A step rate means nothing if the host cannot prepare images that fast; this measures the rate at
the benchmark's size on a synthetic JPEG folder (or the bundled digits), with no model running.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

from inception_jax.tools.bench.workload import train_config

if TYPE_CHECKING:
  import ml_collections


def write_jpeg_folder(root: str, size: int, per_class: int, num_classes: int = 4,
                      seed: int = 0) -> str:
  """A synthetic ``folder:`` dataset of JPEG photos-like images about ``size`` px: smooth random
  colour fields (compressing like photos, unlike white noise), 4:3 landscape, 1.15x the side."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(seed)
  h = max(8, int(round(size * 1.15)))
  w = max(8, int(round(h * 4 / 3)))
  for split, count in (('train', per_class), ('validation', max(1, per_class // 4))):
    for c in range(num_classes):
      directory = os.path.join(root, split, f'class_{c}')
      os.makedirs(directory, exist_ok=True)
      for i in range(count):
        coarse = rs.uniform(0, 255, (max(2, h // 16), max(2, w // 16), 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        noise = rs.randint(-12, 13, (h, w, 3))
        pixels = np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(directory, f'{i:05d}.jpg'), quality=90)
  return root


def pipeline_config(args: argparse.Namespace, dataset: str,
                    data_dir: str) -> ml_collections.ConfigDict:
  """The benchmark's training config reading ``dataset``: a folder of photos gets the training
  augmentation (Inception crop and flips), anything else a plain resize."""
  config = train_config(args)
  config.dataset = dataset
  config.data_dir = data_dir
  config.augment = 'inception_crop' if dataset.startswith('folder:') else 'resize'
  config.random_flip = dataset.startswith('folder:')
  config.shuffle_buffer = 1024
  return config


def bench_pipeline(args: argparse.Namespace, workdir: str) -> dict[str, Any] | None:
  """Images/s of the real training input pipeline (tf.data), alone on the host."""
  if args.pipeline == 'none':
    return None
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  if args.pipeline == 'folder':
    per_class = max(8, -(-2 * args.batch // 4))
    t = time.perf_counter()
    root = write_jpeg_folder(os.path.join(workdir, 'images'), args.size, per_class)
    write_seconds = time.perf_counter() - t
    dataset = 'folder:' + root
  else:
    write_seconds = 0.0
    dataset = 'digits'
  config = pipeline_config(args, dataset, os.path.join(workdir, 'data'))
  t = time.perf_counter()
  iterator = input_pipeline.create_train_iterator(config, process_index=0, process_count=1)
  first = next(iterator)
  setup = time.perf_counter() - t
  for _ in range(2):  # let tf.data's autotuning and prefetch settle
    next(iterator)
  t = time.perf_counter()
  for _ in range(args.pipeline_batches):
    next(iterator)
  seconds = time.perf_counter() - t
  return {'dataset': args.pipeline, 'images_per_second': args.pipeline_batches * args.batch /
          seconds, 'batches': args.pipeline_batches, 'batch_shape': list(first['image'].shape),
          'setup_seconds': setup, 'write_seconds': write_seconds,
          'note': ('tf.data alone (decode, crop or resize, flip, batch: uint8 pixels, the '
                   'normalisation is on the device), all host CPUs'),
          '_dataset': dataset, '_data_dir': os.path.join(workdir, 'data')}
