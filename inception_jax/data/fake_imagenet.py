r"""ILSVRC-2012 tarballs in the real layout, for rehearsing the ImageNet path end to end.

  python -m inception_jax.tools.fake_imagenet --manual_dir D/downloads/manual [--classes K] \
      [--train_per_class N] [--val N] [--seed S]
  python -m inception_jax.tools.prepare --dataset imagenet2012 --data_dir D   # the real builder

writes the two files image-net.org gives you, as TFDS's ``imagenet2012`` builder reads them:

* ``ILSVRC2012_img_train.tar``: a tar of per-synset tars (``n01751748.tar`` holding
  ``n01751748_<k>.JPEG``), for real WordNet ids of the 1,000 classes.
* ``ILSVRC2012_img_val.tar``: ``ILSVRC2012_val_00000001.JPEG`` ... in one flat tar. The builder
  labels validation images by position: the i-th name in sorted order gets line i of its bundled
  ``validation_labels.txt``. So the validation tar holds the *first* ``--val`` images, and each is
  drawn from the class that list gives it; the training classes always include those classes.

Why not noise: the images are the two photographs scikit-learn bundles (already a dependency),
cropped, rescaled and recoloured per class, so JPEG sizes, decode cost and the augmentations'
behaviour resemble ImageNet's. Sizes follow ImageNet's distribution: mostly 500x375 and 375x500,
a few smaller and larger. The oddities the real set has are there too, under the file names the
builder knows (its ``CMYK_IMAGES`` / ``PNG_IMAGES`` lists, which it converts to RGB JPEG): a few
CMYK JPEGs, the one PNG saved with a ``.JPEG`` name, and grayscale JPEGs (which the builder keeps
as they are and the input pipeline must decode to three channels).

The tarballs are written under temporary names and renamed when complete, so an interrupted run
never leaves files that look like a download; an existing non-empty ``--manual_dir`` is refused.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import os
import tarfile
from typing import Iterator, Sequence

import numpy as np

from inception_jax.errors import UserError

TRAIN_TAR = 'ILSVRC2012_img_train.tar'
VAL_TAR = 'ILSVRC2012_img_val.tar'
_PARTIAL = '.partial'

# ImageNet's shapes (width, height): most images are 500x375 or 375x500; the rest are spread
# between thumbnails and multi-megapixel photos. Probabilities of (landscape, portrait, other).
_COMMON_SHAPES = ((500, 375), (375, 500))
_SHAPE_WEIGHTS = (0.6, 0.25, 0.15)
_OTHER_SIDES = (80, 1200)          # the short and long side range of the "other" shapes
GRAYSCALE_EVERY = 50               # about 2 % of ImageNet's JPEGs are grayscale
CMYK_CLASSES = 2                   # synsets of the builder's CMYK list included (one CMYK each)
JPEG_QUALITY = 90
GRAIN_SIGMA = 10.0                 # pixel noise, in 8-bit levels


@dataclasses.dataclass(frozen=True)
class Plan:
  """What will be written: the training synsets (in label order), per-class counts, the labels
  of the validation images in file order, and the special files."""
  train_synsets: tuple[str, ...]
  train_per_class: int
  val_labels: tuple[str, ...]
  cmyk_files: tuple[str, ...]
  png_files: tuple[str, ...]


def _tfds_file(relative: str) -> str:
  """A file bundled with tensorflow-datasets, found without importing it (that loads TF)."""
  spec = importlib.util.find_spec('tensorflow_datasets')
  if spec is None or not spec.submodule_search_locations:
    raise UserError('tensorflow-datasets is not installed: pip install -e . installs it')
  return os.path.join(list(spec.submodule_search_locations)[0], relative)


def _read_lines(relative: str) -> list[str]:
  with open(_tfds_file(relative)) as f:
    return f.read().split()


def _builder_special_files() -> tuple[list[str], list[str]]:
  """The builder's own lists of the CMYK and PNG training files it converts."""
  try:
    from tensorflow_datasets.datasets.imagenet2012 import imagenet2012_dataset_builder as b  # pylint: disable=g-import-not-at-top
    return list(b.CMYK_IMAGES), list(b.PNG_IMAGES)
  except (ImportError, AttributeError) as e:
    raise UserError(f'this tensorflow-datasets has no imagenet2012 builder where expected ({e}); '
                    'install the version pyproject.toml names') from None


def make_plan(classes: int, train_per_class: int, val: int,
              special: tuple[Sequence[str], Sequence[str]] | None = None) -> Plan:
  """Chooses the synsets: those of the first ``val`` validation images, the PNG's, a few of the
  CMYK list's, then further synsets in validation-list order up to ``classes``."""
  if train_per_class < 1 or val < 1 or classes < 1:
    raise UserError('--classes, --train_per_class and --val must be at least 1')
  val_labels = _read_lines('datasets/imagenet2012/validation_labels.txt')
  synsets = set(_read_lines('datasets/imagenet2012/labels.txt'))
  if val > len(val_labels):
    raise UserError(f'--val is at most {len(val_labels)} (the validation split of ILSVRC 2012)')
  cmyk, png = special if special is not None else _builder_special_files()
  chosen = dict.fromkeys(val_labels[:val])  # an ordered set
  chosen.update(dict.fromkeys(f.split('_')[0] for f in [*png, *cmyk[:CMYK_CLASSES]]))
  for synset in val_labels:
    if len(chosen) >= classes:
      break
    chosen.setdefault(synset)
  chosen = sorted(chosen)
  unknown = [s for s in chosen if s not in synsets]
  if unknown:
    raise UserError(f'synsets {unknown} are not ILSVRC-2012 classes: tensorflow-datasets changed?')
  in_train = set(chosen)
  return Plan(train_synsets=tuple(chosen), train_per_class=train_per_class,
              val_labels=tuple(val_labels[:val]),
              cmyk_files=tuple(f for f in cmyk if f.split('_')[0] in in_train),
              png_files=tuple(f for f in png if f.split('_')[0] in in_train))


class Painter:
  """Draws class-dependent crops of the bundled photographs at ImageNet's sizes."""

  def __init__(self, seed: int):
    from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
    self._photos = [np.asarray(p, np.float32) for p in load_sample_images().images]
    self._seed = seed

  def _class_look(self, synset: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """A class is a photo, a region of it and a colour mixing: fixed per synset."""
    rng = np.random.default_rng([self._seed, int(synset[1:])])
    photo = int(rng.integers(len(self._photos)))
    h, w = self._photos[photo].shape[:2]
    size = rng.uniform(0.35, 0.8)
    centre = rng.uniform([size / 2, size / 2], [1 - size / 2, 1 - size / 2]) * (h, w)
    mixing = np.eye(3)[rng.permutation(3)] * 0.7 + rng.uniform(0, 0.3, (3, 3))
    return photo, centre, np.array([size * h, size * w]), mixing

  def image(self, synset: str, index: int) -> np.ndarray:
    """An RGB uint8 image of ``synset``: its region, jittered, at an ImageNet-like size."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    photo, centre, extent, mixing = self._class_look(synset)
    rng = np.random.default_rng([self._seed, int(synset[1:]), index])
    source = self._photos[photo]
    h, w = source.shape[:2]
    box_h, box_w = extent * rng.uniform(0.8, 1.2, 2)
    cy, cx = centre + rng.uniform(-0.1, 0.1, 2) * (h, w)
    top = int(np.clip(cy - box_h / 2, 0, h - 8))
    left = int(np.clip(cx - box_w / 2, 0, w - 8))
    crop = source[top:top + max(8, int(box_h)), left:left + max(8, int(box_w))]
    pixels = np.clip(crop @ mixing.T * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
      pixels = pixels[:, ::-1]
    width, height = _shape(rng)
    resized = np.asarray(Image.fromarray(pixels).resize((width, height), Image.BILINEAR))
    # Sensor grain: an upscaled crop is smoother than a photograph and would compress (and
    # decode) too easily; with it, JPEG sizes come near ImageNet's (about 110 KB at 500x375).
    grain = rng.normal(0, GRAIN_SIGMA, resized.shape)
    return np.clip(resized + grain, 0, 255).astype(np.uint8)


def _shape(rng: np.random.Generator) -> tuple[int, int]:
  kind = rng.choice(3, p=_SHAPE_WEIGHTS)
  if kind < 2:
    return _COMMON_SHAPES[kind]
  short, long = sorted(int(s) for s in rng.integers(*_OTHER_SIDES, 2))
  return (long, short) if rng.random() < 0.7 else (short, long)


def encode(pixels: np.ndarray, mode: str = 'RGB', image_format: str = 'JPEG') -> bytes:
  """``pixels`` (RGB uint8) as a file in ``mode`` ('RGB', 'L' grayscale, 'CMYK')."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = io.BytesIO()
  Image.fromarray(pixels).convert(mode).save(
      out, image_format, **({'quality': JPEG_QUALITY} if image_format == 'JPEG' else {}))
  return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def _train_files(plan: Plan, painter: Painter, synset: str
                 ) -> Iterator[tuple[str, str, bytes]]:
  """One synset's files: the builder's special names first (in their format), then numbered."""
  specials = [(f, 'CMYK', 'JPEG') for f in plan.cmyk_files if f.startswith(synset + '_')]
  specials += [(f, 'RGB', 'PNG') for f in plan.png_files if f.startswith(synset + '_')]
  taken = {f for f, _, _ in specials}
  names = specials[:plan.train_per_class]
  k = 1
  while len(names) < plan.train_per_class:
    name = f'{synset}_{k}.JPEG'
    if name not in taken:
      gray = (len(names) + int(synset[1:])) % GRAYSCALE_EVERY == 0
      names.append((name, 'L' if gray else 'RGB', 'JPEG'))
    k += 1
  for i, (name, mode, image_format) in enumerate(names):
    yield name, mode, encode(painter.image(synset, i), mode, image_format)


def write(manual_dir: str, plan: Plan, seed: int = 0) -> dict[str, int]:
  """Writes both tarballs into ``manual_dir`` (which must be absent or empty); returns counts."""
  if os.path.isdir(manual_dir) and os.listdir(manual_dir):
    raise UserError(f'{manual_dir} is not empty: choose a new --manual_dir (nothing was written)')
  if os.path.exists(manual_dir) and not os.path.isdir(manual_dir):
    raise UserError(f'{manual_dir} is a file: choose a directory for --manual_dir')
  os.makedirs(manual_dir, exist_ok=True)
  painter = Painter(seed)
  partials = [os.path.join(manual_dir, t + _PARTIAL) for t in (VAL_TAR, TRAIN_TAR)]
  counts = {'train': 0, 'validation': 0, 'grayscale': 0, 'cmyk': 0, 'png': 0}
  try:
    with tarfile.open(partials[0], 'w') as tar:
      for i, synset in enumerate(plan.val_labels):
        gray = i % GRAYSCALE_EVERY == GRAYSCALE_EVERY // 2 or (i == 1 and len(plan.val_labels) > 1)
        counts['grayscale'] += gray
        _add(tar, f'ILSVRC2012_val_{i + 1:08d}.JPEG',
             encode(painter.image(synset, 10_000 + i), 'L' if gray else 'RGB'))
        counts['validation'] += 1
    with tarfile.open(partials[1], 'w') as tar:
      for synset in plan.train_synsets:
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode='w') as class_tar:
          for name, mode, data in _train_files(plan, painter, synset):
            _add(class_tar, name, data)
            counts['train'] += 1
            counts['cmyk'] += mode == 'CMYK'
            counts['png'] += name in plan.png_files
            counts['grayscale'] += mode == 'L'
        _add(tar, f'{synset}.tar', inner.getvalue())
    for partial in partials:  # complete: give both their real names (train last)
      os.replace(partial, partial[:-len(_PARTIAL)])
  except BaseException:
    for partial in partials:
      if os.path.exists(partial):
        os.remove(partial)
    raise
  return counts
