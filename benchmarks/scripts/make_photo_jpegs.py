r"""Real photographs as an ImageNet-like image folder, for timing the input pipeline.

  python benchmarks/scripts/make_photo_jpegs.py OUT_DIR [--train 640] [--val 400] [--classes 10]

Synthetic images decode at a different cost per pixel than photographs (flat regions compress to
little and decode fast), so pipeline rates are measured on photographs: those that Debian's
wallpaper packages ship (``apt-get install -y mate-backgrounds lomiri-wallpapers-16.04
lomiri-wallpapers-20.04``) plus scikit-learn's two sample photographs. Each output is a random
window of one photograph (aspect 3/4-4/3 either way, 50-100 % of its area), resized with Lanczos
to ImageNet's sizes (longer side 350-520 px, shorter side 0.62-0.90 of it, 70 % landscape: about
400 x 350 px on average) and re-encoded as baseline 4:2:0 JPEG at ``--quality`` (default 99:
wallpapers are smoother than ImageNet's photographs, so it takes this quality to come near
ImageNet's ~110 KB per file; 401 x 363 px and 86 KB on average with the defaults). Written as
``OUT_DIR/train/<class>/`` and ``OUT_DIR/validation/<class>/``, which the pipeline reads as
``--config.dataset=folder:OUT_DIR``.
Prints the average size in pixels and KB. Deterministic for a given ``--seed`` and set of photos.
"""

from __future__ import annotations

import argparse
import glob
import io
import os

import numpy as np
from PIL import Image

# Photographs only: the packages' drawn or geometric wallpapers are left out by name.
_PHOTO_GLOBS = ('/usr/share/backgrounds/mate/nature/*.jpg',
                '/usr/share/backgrounds/mate/abstract/Elephants.jpg',
                '/usr/share/backgrounds/*_by_*.jpg')
_NOT_PHOTOS = ('Painting-Colors', 'analogpattern')


def photographs() -> list[np.ndarray]:
  """The system's photographs and scikit-learn's two, as RGB arrays, in a fixed order."""
  paths = sorted({p for g in _PHOTO_GLOBS for p in glob.glob(g)
                  if not any(n in p for n in _NOT_PHOTOS)})
  images = [np.asarray(Image.open(p).convert('RGB')) for p in paths]
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  images += list(load_sample_images().images)
  return images


def _window(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
  area = height * width * rng.uniform(0.5, 1.0)
  ratio = rng.uniform(3 / 4, 4 / 3) ** rng.choice([-1, 1])
  h = int(min(height, round(np.sqrt(area / ratio))))
  w = int(min(width, round(h * ratio)))
  return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


def _size(rng: np.random.Generator) -> tuple[int, int]:
  long = int(rng.integers(350, 521))
  short = int(round(long * rng.uniform(0.62, 0.90)))
  return (long, short) if rng.random() < 0.7 else (short, long)


def make_jpeg(photo: np.ndarray, rng: np.random.Generator, quality: int) -> bytes:
  y, x, h, w = _window(rng, *photo.shape[:2])
  image = Image.fromarray(photo[y:y + h, x:x + w]).resize(_size(rng), Image.LANCZOS)
  out = io.BytesIO()
  image.save(out, 'JPEG', quality=quality, subsampling='4:2:0')
  return out.getvalue()


def write(out_dir: str, train: int, val: int, classes: int, quality: int,
          seed: int) -> dict[str, float]:
  """Writes the folder; returns the average width, height and KB over all files."""
  photos = photographs()
  rng = np.random.default_rng(seed)
  widths, heights, sizes = [], [], []
  for split, count in (('train', train), ('validation', val)):
    for i in range(count):
      data = make_jpeg(photos[i % len(photos)], rng, quality)
      class_dir = os.path.join(out_dir, split, f'class{i % classes:03d}')
      os.makedirs(class_dir, exist_ok=True)
      with open(os.path.join(class_dir, f'{split}_{i:05d}.jpg'), 'wb') as f:
        f.write(data)
      width, height = Image.open(io.BytesIO(data)).size
      widths.append(width)
      heights.append(height)
      sizes.append(len(data))
  return {'photographs': len(photos), 'files': len(sizes), 'width': float(np.mean(widths)),
          'height': float(np.mean(heights)), 'kilobytes': float(np.mean(sizes)) / 1000}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('out_dir')
  parser.add_argument('--train', type=int, default=640)
  parser.add_argument('--val', type=int, default=400)
  parser.add_argument('--classes', type=int, default=10)
  parser.add_argument('--quality', type=int, default=99)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  stats = write(args.out_dir, args.train, args.val, args.classes, args.quality, args.seed)
  print(f'{stats["files"]} JPEGs from {stats["photographs"]} photographs in {args.out_dir}: '
        f'{stats["width"]:.0f} x {stats["height"]:.0f} px, {stats["kilobytes"]:.1f} KB on average')


if __name__ == '__main__':
  main()
