"""Which published run a config follows, and the global batch that run used.

An ImageNet config's default follows the training recipe of one published run at that run's
global batch (configs/*.py say which, field by field, what differs, and whether the run's accuracy
belongs to the network the config trains; README "Recipes"). Its learning rate scales linearly
with ``global_batch_size``, but a linear rule is only known to hold up to the batches someone
actually trained at (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §5.2 and Fig. 1: it
breaks down past 8k images for ResNet-50). Two config fields record the evidence:

* ``recipe_source``: the run (repository, file, flag or section); '' = the config follows none.
* ``recipe_verified_batch_size``: the global batch of that run, as stated or as its script's
  default; 0 = it states none.

:func:`batch_warning` turns a batch past that evidence into one line for the run's log (the
training loop prints it at start; ``python -m inception_jax.tools.plan`` lists it too).
"""

from __future__ import annotations

from typing import Any

from inception_jax.errors import UserError


def _field(config: Any, key: str, default: Any) -> Any:
  value = config.get(key, default) if hasattr(config, 'get') else getattr(config, key, default)
  return default if value is None else value


def verified_batch_size(config: Any) -> int:
  """``config.recipe_verified_batch_size`` checked: a whole number >= 0 (0 = none stated)."""
  value = _field(config, 'recipe_verified_batch_size', 0)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
      int(value) != value):
    raise UserError(f'config.recipe_verified_batch_size must be a whole number >= 0 '
                    f'(0 = the cited run states no batch), got {value!r}')
  return int(value)


def batch_warning(config: Any) -> str | None:
  """One line when ``global_batch_size`` is past what the cited run verified, else None.

  None also when the config cites no run (``recipe_source`` empty: the offline quick start and
  other configs that claim no published result).
  """
  source = str(_field(config, 'recipe_source', '')).strip()
  verified = verified_batch_size(config)
  if not source:
    return None
  batch = int(_field(config, 'global_batch_size', 0))
  rate = 'the learning rate is scaled linearly'
  try:  # optimizers.scaled_learning_rate, without importing JAX for one product
    scaled = float(_field(config, 'learning_rate', 0.0)) * batch / float(
        _field(config, 'base_batch_size', batch))
    rate += f' (to {scaled:.4g})'
  except (TypeError, ValueError, ZeroDivisionError):
    pass
  if verified == 0:
    return (f'warning: the run this recipe follows states no batch size ({source}); at '
            f'global_batch_size={batch} {rate}, but the accuracy is unverified')
  if batch > verified:
    return (f'warning: global_batch_size={batch} is larger than {verified}, the batch of '
            f'the run this recipe follows ({source}); {rate}, but the accuracy is unverified at '
            'this batch')
  return None
