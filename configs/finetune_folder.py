r"""Fine-tuning converted weights on your own image folder (class sub-folders per split).

  # 1. Convert released weights (torchvision / timm; see python -m inception_jax.tools.convert -h)
  python -m inception_jax.tools.convert --from timm --model inception_v3 \
      --timm-name inception_v3.tv_in1k --weights model.safetensors --out converted/v3
  # 2. Fine-tune on /data/flowers/{train,validation or val}/<class>/<image>; the ':DIR' after the
  #    file reads the converted checkpoint's meta.json (model, aux heads, normalisation, image
  #    size, eval crop) and sets init_from=DIR
  python train.py --config=configs/finetune_folder.py:converted/v3 --workdir=runs/flowers \
      --config.dataset=folder:/data/flowers
  #    ... or a linear probe: only the classifiers train, the backbone's parameters stay as given
  python train.py --config=configs/finetune_folder.py:converted/v3 --workdir=runs/flowers_probe \
      --config.dataset=folder:/data/flowers --config.freeze_backbone=True \
      --config.model_overrides.bn_momentum=1.0
  # 3. Export the fine-tuned network
  python -m inception_jax.tools.export --workdir runs/flowers --format saved_model --out flowers_sm

Without ``:DIR``, pass ``--config.init_from=DIR`` and the preprocessing flags the converter printed
(``use it with: ...``; also in ``DIR/meta.json``): torchvision weights ``--config.normalization=
inception`` with ``image_size`` 299 / ``eval_crop_fraction`` 299/342 (googlenet_tv: 224, 224/256);
timm's ``inception_v3.tv_in1k``/``tf_in1k``/``tf_adv_in1k`` ``inception``, ``gluon_in1k``
``imagenet``, all at 299 with 0.875; weights without aux heads also
``--config.model_overrides.aux_logits=False``.

What it sets, and why:
  * Network and weights: ``init_from`` loads every array whose path and shape match
    (training/run_setup.py ``_init_from``, checkpoint.py ``merge_pretrained``); the classifier
    ``fc`` and the aux heads' last layers have the folder's class count, so they keep their fresh
    initialisation: the classifier is replaced. The auxiliary heads are kept when the weights have
    them (``aux_weight`` 0.4, the Inception v3 recipe's; Szegedy et al. 2016, §4).
  * Preprocessing: the weights' own (above): a network sees inputs scaled as it was trained.
  * Optimiser: SGD with momentum 0.9 at 0.01 per 256 images (the linear scaling rule, Goyal et
    al. 2017, so 0.00125 at this config's batch 32): an order of magnitude below the from-scratch
    rates, so the pretrained features are refined rather than overwritten (Kornblith et al. 2019,
    "Do Better ImageNet Models Transfer Better?", fine-tune with SGD momentum 0.9 and a small
    rate). Cosine decay (Loshchilov & Hutter 2017) after one warm-up epoch (the new classifier's
    first large gradients would otherwise disturb the backbone); label smoothing 0.1 (Szegedy et
    al. 2016, §7); weight decay 4e-5 (TF-slim's Inception arg scope).
  * Length: 5 epochs, a few passes over a folder of thousands of images, evaluated at the end.
  * ``freeze_backbone`` (default False): only ``fc`` and the aux classifiers are updated; every
    other parameter's update is exactly zero (training/optimizers.py). BatchNorm running
    statistics are not parameters: the training step normalises each batch with its own
    statistics and updates the running averages, as in any training step. Add
    ``--config.model_overrides.bn_momentum=1.0`` to hold them too (``running = 1.0 * running +
    0.0 * batch``), so the frozen backbone is evaluated exactly as converted.
"""

from __future__ import annotations

import json
import os

from inception_jax.config import loading as config_loading
from inception_jax.config import schema
from inception_jax.errors import UserError

FINETUNE = {
    'model': 'inception_v3',
    'dataset': 'folder:',             # set --config.dataset=folder:/path
    'image_size': 299,
    'eval_crop_fraction': 0.875,
    'normalization': 'inception',
    'augment': 'inception_crop',
    'random_flip': True,
    'shuffle_buffer': 4096,
    'global_batch_size': 32,
    'eval_batch_size': 64,
    'num_epochs': 5.0,
    'optimizer': 'sgd',
    'momentum': 0.9,
    'learning_rate': 0.01,
    'base_batch_size': 256,
    'lr_schedule': 'cosine',
    'warmup_epochs': 1.0,
    'weight_decay': 4e-5,
    'label_smoothing': 0.1,
    'aux_weight': 0.4,
    'log_every_steps': 20,
    'checkpoint_every_steps': 500,
    'keep_checkpoints': 2,
    'freeze_backbone': False,
}

# meta.json fields (inception_jax/convert/common.py conversion_metadata) -> config fields.
_FROM_METADATA = {'model': 'model', 'normalization': 'normalization', 'image_size': 'image_size',
                  'eval_crop_fraction': 'eval_crop_fraction'}


def metadata_overrides(converted_dir: str) -> dict:
  """The config fields a converted checkpoint's ``meta.json`` decides (init_from included)."""
  path = os.path.join(converted_dir, 'meta.json')
  try:
    with open(path) as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f'--config=configs/finetune_folder.py:{converted_dir}: cannot read {path} '
                    f'({e.__class__.__name__}); pass the --out directory of '
                    'python -m inception_jax.tools.convert') from None
  missing = [k for k in _FROM_METADATA if k not in meta]
  if missing:
    raise UserError(f'{path} lacks {", ".join(missing)}; it is not a converted checkpoint')
  out = {field: meta[key] for key, field in _FROM_METADATA.items()}
  out['init_from'] = converted_dir
  for key, value in (meta.get('model_overrides') or {}).items():
    out[f'model_overrides.{key}'] = value
  return out


def get_config(arg: str | None = None):
  """Fine-tuning on ``folder:``; ``arg`` = a converted checkpoint directory to start from."""
  overrides = dict(FINETUNE)
  if arg:
    overrides.update(metadata_overrides(arg))
  return config_loading.apply_overrides(schema.base_config(), overrides,
                                        'configs/finetune_folder.py')
