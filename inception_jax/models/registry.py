"""The model registry: each entry carries what the project knows about one network.

Like timm's ``default_cfgs``, an entry (:class:`ModelSpec`) sits next to its model (each model file
registers its own) and holds, besides the constructor, what the tools would otherwise look up by
name: the input size the published network takes, the torchvision counterpart and how to convert
its weights (how images are normalised and cropped is the training config's, ``schema``). Adding a
model touches ``models/`` only:
``register('mynet', ModelSpec(MyNet, 'one line'))``, and ``--config.model=mynet`` trains it, its
fields settable as ``--config.model_overrides.FIELD=VALUE`` (:func:`override_types` derives them
from the module's own annotations).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Callable, Literal

import flax.linen as nn

from inception_jax.errors import UserError

# Fields the training system sets itself (half_precision, the lowering, sync_batch_norm) or
# Flax's own: never command-line overrides, whatever their annotation.
NOT_OVERRIDES = frozenset({'parent', 'name', 'dtype', 'lowering', 'bn_axis_name'})
_SCALARS = (bool, int, float, str)


def _same_name(name: str) -> str:
  return name


@dataclasses.dataclass(frozen=True)
class TorchvisionLayout:
  """How a torchvision state dict maps onto the entry's parameters (``inception_jax.convert.torchvision``
  does the generic part: kernel transposes, BN names, checks)."""

  signature: str                     # a state-dict key only this architecture has
  aux_prefixes: tuple[str, ...]      # state-dict prefixes of the auxiliary heads ('aux1.', ...)
  resize_size: int                   # torchvision's eval resize before its crop of the input size
  module_name: Callable[[str], str] = _same_name  # Flax module name -> torchvision's
  # (Dense kernel path, (channels, height, width)) for Dense layers fed by torch's NCHW flatten
  # of a map, whose input rows must be permuted to this project's NHWC flatten.
  nchw_flattened_kernels: tuple[tuple[str, tuple[int, int, int]], ...] = ()


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One registry entry: a constructor and what the tools need to know about it.

  ``constructor`` is a Flax module class, or a ``functools.partial`` of one fixing the fields that
  make the variant; it must follow the models contract (``check_config()``,
  ``min_input_size()``, ``ModelOutput`` with ``logits`` and ``aux_logits``).
  """

  constructor: Callable[..., nn.Module]
  description: str                      # one line, for listings
  default_input_size: int = 224         # the side the published network takes
  torchvision_name: str | None = None   # torchvision.models.<name> to compare with, if any
  torchvision_note: str | None = None   # how this entry differs from that torchvision model
  torchvision_layout: TorchvisionLayout | None = None  # its weights convert to this entry


_REGISTRY: dict[str, ModelSpec] = {}


def model_class(constructor: Callable[..., nn.Module]) -> type:
  """The class a constructor builds (``functools.partial`` unwrapped)."""
  while isinstance(constructor, functools.partial):
    constructor = constructor.func
  return constructor


def _scalar_type(hint: Any) -> type | None:
  """int/float/bool/str, or the one type of a Literal's values (``Literal['3x3', '7x7']`` ->
  str); None for anything else (Optional, Any, classes): not settable from a flag."""
  if hint in _SCALARS:
    return hint
  if typing.get_origin(hint) is Literal:
    kinds = {type(value) for value in typing.get_args(hint)}
    if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:
      return kinds.pop()
  return None


def _field_types(cls: type) -> dict[str, type]:
  hints = typing.get_type_hints(cls)
  out = {}
  for field in dataclasses.fields(cls):
    kind = _scalar_type(hints.get(field.name))
    if field.init and field.name not in NOT_OVERRIDES and kind is not None:
      out[field.name] = kind
  return out


def _union(specs: dict[str, ModelSpec]) -> dict[str, type]:
  out: dict[str, type] = {}
  owner: dict[str, str] = {}
  for name, spec in sorted(specs.items()):
    for field, kind in _field_types(model_class(spec.constructor)).items():
      if out.setdefault(field, kind) is not kind:
        raise ValueError(f'model field {field!r} is {kind.__name__} in {name!r} but '
                         f'{out[field].__name__} in {owner[field]!r}; one config key takes one '
                         'type, so rename one of them')
      owner.setdefault(field, name)
  return out


def override_types() -> dict[str, type]:
  """Every registered model's command-line settable fields and their types (the union).

  Derived from the modules' annotations (scalars and Literals of one scalar type; not
  :data:`NOT_OVERRIDES`), so a new model's fields become ``--config.model_overrides.KEY=VALUE``
  without a list to edit. ``schema.base_config()`` builds its placeholders from it.
  """
  return _union(_REGISTRY)


def _check(name: str, spec: ModelSpec) -> None:
  """Programming errors in an entry, raised when it is registered rather than at first use."""
  cls = model_class(spec.constructor)
  if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
    raise ValueError(f'model {name!r}: constructor must be a Flax module class or a '
                     f'functools.partial of one, got {spec.constructor!r}')
  missing = [m for m in ('check_config', 'min_input_size') if not callable(getattr(cls, m, None))]
  if missing:
    raise ValueError(f'model {name!r}: {cls.__name__} lacks {", ".join(missing)} (models contract)')
  if spec.default_input_size <= 0:
    raise ValueError(f'model {name!r}: needs default_input_size > 0')
  if spec.torchvision_layout is not None and not spec.torchvision_name:
    raise ValueError(f'model {name!r}: a torchvision_layout needs the torchvision_name')


def register(name: str, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
  """Adds ``spec`` as model ``name``; returns it.

  Registering the same entry again is a no-op; a different one under a taken name raises
  ValueError unless ``replace``. So does a field whose type conflicts with
  another model's field of the same name (they share one config key).
  """
  _check(name, spec)
  if name in _REGISTRY and _REGISTRY[name] != spec and not replace:
    raise ValueError(f'model {name!r} is already registered; pass replace=True to redefine it')
  _union({**_REGISTRY, name: spec})
  _REGISTRY[name] = spec
  return spec


def unregister(name: str) -> None:
  """Removes model ``name`` (tests that register a model for their own duration)."""
  _REGISTRY.pop(name, None)


def available() -> list[str]:
  """Registered model names, sorted."""
  return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
  """Registry entry ``name``; an unknown name raises UserError listing the known ones."""
  if name not in _REGISTRY:
    raise UserError(f'unknown model {name!r}; choose one of: {", ".join(available())}')
  return _REGISTRY[name]


def describe() -> dict[str, str]:
  """Registered model names with a one-line description."""
  return {name: _REGISTRY[name].description for name in available()}


def config_fields(name: str) -> list[str]:
  """Fields a registry entry accepts as overrides (Flax's own ``parent``/``name`` excluded)."""
  cls = model_class(spec(name).constructor)
  return sorted(f.name for f in dataclasses.fields(cls)
                if f.init and f.name not in ('parent', 'name'))


def create(name: str, **overrides: Any) -> nn.Module:
  """Build registry entry ``name`` with some fields overridden; bad names raise UserError."""
  constructor = spec(name).constructor
  valid = config_fields(name)
  unknown = sorted(set(overrides) - set(valid))
  if unknown:
    raise UserError(f'unknown override {", ".join(map(repr, unknown))} for model {name!r}; '
                    f'valid keys: {", ".join(valid)}')
  model = constructor(**overrides)
  model.check_config()
  return model
