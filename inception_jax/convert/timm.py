"""timm's ``inception_v3`` weights -> this project's Flax variables, with logit parity.

``python -m inception_jax.tools.convert --from timm --model inception_v3 --timm-name
inception_v3.tf_in1k --weights FILE --out DIR``. FILE is the variant's ``model.safetensors`` or
``pytorch_model.bin`` (Hugging Face ``timm/<name>``), or any ``torch.save(model.state_dict())``.

**One network, four weight sets.** timm's ``InceptionV3`` (timm/models/inception_v3.py, timm
1.0) is torchvision's ``Inception3`` rebuilt from ``ConvNormAct`` blocks whose children are named
``conv`` and ``bn``, as torchvision's ``BasicConv2d``: the state-dict keys, shapes and layouts are
torchvision's, so the mapping is :mod:`inception_jax.convert.torchvision`'s (called, not copied).
The network is the same too: explicit symmetric padding, BatchNorm eps 1e-3, 3x3 average pools
counting the padding (``F.avg_pool2d``'s default), an adaptive-pooled aux head, global average
pool, ``fc``. The variants differ only in their weights and in ``pretrained_cfg``:

=====================  ========================  ==========  ====  ==========================
timm name              origin                    mean/std    aux   normalization here
=====================  ========================  ==========  ====  ==========================
inception_v3.tv_in1k   torchvision's release     0.5 / 0.5   yes   inception ([-1, 1])
inception_v3.tf_in1k   TF-slim 2016-08-28 port   0.5 / 0.5   no    inception ([-1, 1])
inception_v3.tf_adv_in1k  TF adversarial (2017)  0.5 / 0.5   no    inception ([-1, 1])
inception_v3.gluon_in1k   GluonCV                ImageNet    no    imagenet (mean/std)
=====================  ========================  ==========  ====  ==========================

All four: 1000 classes (timm stripped TF-slim's background class from the TF ports), 299 px,
``crop_pct`` 0.875, bicubic resize. timm feeds the mean/std-normalised image straight to the
first convolution (no torchvision ``transform_input``), so mean = std = 0.5 is exactly
``normalization='inception'`` (``x / 127.5 - 1``) and ImageNet's mean/std is ``'imagenet'``.
The TF ports keep timm's network semantics, not TF-slim's (whose SAME average pools exclude the
padding and whose BatchNorm has no scale): timm's ports were measured with timm's network, and
parity is with timm. A state dict with 1001 classes (a TF-slim export with the background class at
index 0) converts with ``label_offset: 1`` recorded in the metadata.

**Preprocessing recorded, and what differs.** The checkpoint metadata records ``normalization``,
``image_size`` 299 and ``eval_crop_fraction`` 0.875, which this project's pipeline applies; the
source block also records timm's mean/std, crop_pct and interpolation. This project resizes
bilinearly, timm bicubically: logits match timm's on the same tensor, accuracy on JPEGs may
differ slightly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from inception_jax.convert import common
from inception_jax.convert import torchvision as tv
from inception_jax.errors import UserError

SOURCE = 'timm'
INCEPTION_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))          # timm IMAGENET_INCEPTION_*
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # timm IMAGENET_DEFAULT_*
_NORMALIZATIONS = {INCEPTION_MEAN_STD: 'inception', IMAGENET_MEAN_STD: 'imagenet'}


@dataclasses.dataclass(frozen=True)
class TimmVariant:
  """One timm pretrained tag: this project's model and timm's ``pretrained_cfg`` for it."""
  timm_name: str
  model: str                      # this project's registered model
  origin: str
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  released_with_aux: bool         # the published file has the aux head's weights
  image_size: int = 299
  crop_pct: float = 0.875
  interpolation: str = 'bicubic'

  @property
  def normalization(self) -> str:
    """This project's normalisation equal to timm's ``(x - mean) / std`` on [0, 1] pixels."""
    return _NORMALIZATIONS[(self.mean, self.std)]


VARIANTS = {v.timm_name: v for v in (
    TimmVariant('inception_v3.tv_in1k', 'inception_v3', "torchvision's ImageNet weights",
                *INCEPTION_MEAN_STD, released_with_aux=True),
    TimmVariant('inception_v3.tf_in1k', 'inception_v3',
                'TF-slim inception_v3_2016_08_28, ported by timm', *INCEPTION_MEAN_STD,
                released_with_aux=False),
    TimmVariant('inception_v3.tf_adv_in1k', 'inception_v3',
                'TF adv_inception_v3_2017_08_18 (adversarially trained), ported by timm',
                *INCEPTION_MEAN_STD, released_with_aux=False),
    TimmVariant('inception_v3.gluon_in1k', 'inception_v3', 'GluonCV inceptionv3, ported by timm',
                *IMAGENET_MEAN_STD, released_with_aux=False),
)}

# timm's other spellings of the same weights: the bare architecture (timm's default tag, the
# first in its default_cfgs) and its deprecated names (register_model_deprecations).
ALIASES = {
    'inception_v3': 'inception_v3.tv_in1k',
    'tf_inception_v3': 'inception_v3.tf_in1k',
    'adv_inception_v3': 'inception_v3.tf_adv_in1k',
    'gluon_inception_v3': 'inception_v3.gluon_in1k',
}


def variant(timm_name: str) -> TimmVariant:
  """The variant a timm model name names, else a UserError listing the ones there are."""
  name = ALIASES.get(timm_name, timm_name)
  if name not in VARIANTS:
    raise UserError(f'no converter for timm model {timm_name!r}; choose one of '
                    f'{", ".join(VARIANTS)}')
  return VARIANTS[name]


def _check_architecture(v: TimmVariant, state_dict: Mapping[str, Any], source: str) -> None:
  """A UserError when the file is not a timm inception_v3 state dict at all (another model)."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  signature = models.spec(v.model).torchvision_layout.signature
  keys = [k for k in state_dict if not k.endswith(tv.IGNORED_SUFFIXES)]
  if not any(k == signature or k.endswith('.' + signature) for k in keys):
    raise UserError(f'{source} is not a timm {v.model} state dict (no {signature}; it has '
                    f'{len(keys)} arrays: {tv.few_keys(keys)}); pass the weights of {v.timm_name}')


def convert_state_dict(timm_name: str, state_dict: Mapping[str, Any],
                       source: str = 'state dict') -> dict[str, Any]:
  """timm state dict (name -> numpy array) -> ``{'params': ..., 'batch_stats': ...}``.

  timm's keys are torchvision's, so this checks the architecture and hands the arrays to
  ``torchvision.convert_state_dict`` (every key used, every shape checked).
  """
  v = variant(timm_name)
  _check_architecture(v, state_dict, source)
  return tv.convert_state_dict(v.model, state_dict, source=source)


def conversion_metadata(timm_name: str, variables: Mapping[str, Any], *,
                        weights_path: str | None = None) -> dict[str, Any]:
  """What evaluation / prediction / init_from need: the variant's preprocessing and origin."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  v = variant(timm_name)
  params = variables['params']
  aux_prefixes = models.spec(v.model).torchvision_layout.aux_prefixes
  num_classes = int(np.shape(params['fc']['bias'])[0])
  return common.conversion_metadata(
      v.model,
      num_classes=num_classes,
      aux_logits=all(p.rstrip('.') in params for p in aux_prefixes),
      image_size=v.image_size,
      eval_crop_fraction=v.crop_pct,
      normalization=v.normalization,
      source={
          'framework': SOURCE,
          'architecture': f'timm.models.{v.model}',
          'timm_name': v.timm_name,
          'origin': v.origin,
          'mean': list(v.mean),
          'std': list(v.std),
          'crop_pct': v.crop_pct,
          'interpolation': v.interpolation,
          # TF-slim's 1001-class heads put "background" at index 0: ImageNet class i is logit i+1.
          'label_offset': 1 if num_classes == 1001 else 0,
      },
      weights_path=weights_path)


def convert_file(timm_name: str, weights: str, out_dir: str) -> dict[str, Any]:
  """Reads (safely: see ``torchvision.load_torch_state_dict``), converts and saves; returns the
  metadata written."""
  variant(timm_name)
  state_dict = tv.load_torch_state_dict(weights)
  variables = convert_state_dict(timm_name, state_dict, source=f'weights file {weights}')
  meta = conversion_metadata(timm_name, variables, weights_path=weights)
  common.save_converted(out_dir, variables, meta)
  return meta


__all__ = ['ALIASES', 'SOURCE', 'TimmVariant', 'VARIANTS', 'conversion_metadata', 'convert_file',
           'convert_state_dict', 'variant']
