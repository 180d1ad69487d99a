"""What is benchmarked: the model, the training config and the random batch every part shares.

Our steps, the input pipeline, the training loop and torchvision all run from these, so that
their figures describe the same network, batch and loss.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from inception_jax.tools.bench.arguments import parse_overrides
from inception_jax.tools.bench.lowerings import lowering_for

if TYPE_CHECKING:
  import flax.linen as nn
  import ml_collections


def default_aux_weight() -> float:
  """The aux-loss weight train.py uses unless a config sets one: ``schema.base_config()``'s."""
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
  return float(schema.base_config().aux_weight)


def build_model(args: argparse.Namespace) -> nn.Module:
  """The model train.py would build for ``--model``/``--set``, with ``--plain``'s lowering."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  from inception_jax.training import model_factory  # pylint: disable=g-import-not-at-top
  config = train_config(args)
  for key, value in parse_overrides(args.set).items():
    config.model_overrides[key] = value
  network = models.create(args.model).label  # the lowering is chosen per network
  model = model_factory.build_model(config, num_classes=args.num_classes, check_input_size=False,
                                    lowering=lowering_for(args.plain, network))
  models.check_input_size(model, args.size, f'--size {args.size}', args.model)
  return model


def train_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """A training config for the benchmark's model, batch and size: the schema's defaults (its aux
  weight included, unless ``--aux-weight``), SGD with momentum at a constant rate and no weight
  decay, the update torchvision's side runs too."""
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
  c = schema.base_config()
  c.model = args.model
  c.image_size = args.size
  c.global_batch_size = args.batch
  c.eval_batch_size = args.batch
  c.optimizer = 'sgd'
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.base_batch_size = args.batch
  c.lr_schedule = 'constant'
  c.weight_decay = 0.0
  if args.aux_weight is not None:
    c.aux_weight = args.aux_weight
  c.half_precision = bool(args.half)
  return c


def random_batch(batch: int, size: int, num_classes: int, seed: int = 0,
                 half: bool = False) -> dict[str, Any]:
  """Random images (bfloat16 with ``half``, as the input pipeline's ``image_dtype``)."""
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(seed)
  dtype = ml_dtypes.bfloat16 if half else np.float32
  return {'image': rs.standard_normal((batch, size, size, 3)).astype(dtype),
          'label': rs.randint(0, num_classes, size=(batch,)).astype(np.int32)}
