"""Parameters and multiply-adds per module: the papers' efficiency argument, made measurable.

Counts come from the real model, never from a table: parameters from ``jax.eval_shape`` of
``model.init`` (BatchNorm running statistics live in ``batch_stats`` and are not counted, as in
torchvision), multiply-adds by intercepting every ``nn.Conv`` / ``nn.Dense`` call during that same
abstract trace (no FLOP is executed). The MAC convention is torchvision's: convolutions
``out_h * out_w * out_c * kh * kw * in_c / groups`` and fully connected ``in * out`` per image;
pooling, BN, ReLU and concatenation are not counted. Totals are for inference (aux heads off);
the aux heads' share is reported separately.

    python -m inception_jax.tools.summary --model googlenet_tv
    python -m inception_jax.tools.summary --model inception_v3 --set aux_logits=False --json
    python -m inception_jax.tools.summary --model googlenet --naive-vs-reduced
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from inception_jax import errors
from inception_jax import models
from inception_jax.models import contract
from inception_jax.models import googlenet as googlenet_lib
from inception_jax.models import inception_v3 as inception_v3_lib
from inception_jax.models import layers

_AUX_HEADS = (googlenet_lib.AuxHeadV1, inception_v3_lib.AuxHeadV3)


@dataclasses.dataclass
class Row:
  """One line of the table: a stem, an Inception module, an aux head or the classifier."""

  name: str
  params: int = 0
  macs: int = 0
  output_shape: tuple[int, ...] = ()
  aux: bool = False  # runs only in training (or with return_aux=True)


def default_size(model: nn.Module) -> int:
  """The size the references are quoted at: the ``default_input_size`` of the registry entries
  of the model's class (299 px for Inception v3, 224 px for GoogLeNet); 224 for other modules."""
  sizes = {models.spec(n).default_input_size for n in models.available()
           if models.model_class(models.spec(n).constructor) is type(model)}
  return sizes.pop() if len(sizes) == 1 else 224


def _layer_macs(module: nn.Module, x: jax.Array, y: jax.Array) -> int:
  """Multiply-adds of one conv / dense call, per image."""
  spatial = math.prod(y.shape[1:-1])
  if isinstance(module, nn.Conv):
    ks = module.kernel_size
    kernel = ks ** (y.ndim - 2) if isinstance(ks, int) else math.prod(ks)
    return spatial * y.shape[-1] * kernel * x.shape[-1] // module.feature_group_count
  return spatial * x.shape[-1] * y.shape[-1]  # nn.Dense on [..., in]


def _outermost_calls(record: Callable[[Any, tuple, Any], None]):
  """A method interceptor that calls ``record(module, args, out)`` once per module call.

  A subclass whose ``__call__`` delegates to ``super().__call__`` (``lowering.FastConv`` on forms
  it leaves to ``nn.Conv``) is intercepted twice for one call; only the outermost one is recorded.
  """
  active: set[int] = set()

  def interceptor(next_fun, args, kwargs, context):
    key = id(context.module)
    if context.method_name != '__call__' or key in active:
      return next_fun(*args, **kwargs)
    active.add(key)
    try:
      out = next_fun(*args, **kwargs)
    finally:
      active.discard(key)
    record(context.module, args, out)
    return out

  return interceptor


def _trace(model: nn.Module, size: int) -> tuple[Any, list[dict[str, Any]]]:
  """Abstractly initialise ``model`` on one ``size`` x ``size`` image, recording every call.

  Initialisation runs the aux heads too (they own parameters), so one trace sees everything.
  """
  calls: list[dict[str, Any]] = []

  def record(module, args, out):
    call = dict(path=module.path, module=module,
                in_shape=tuple(args[0].shape) if args and hasattr(args[0], 'shape') else (),
                out_shape=tuple(out.shape) if hasattr(out, 'shape') else (), macs=0)
    if isinstance(module, (nn.Conv, nn.Dense)):
      call['macs'] = _layer_macs(module, args[0], out)
    calls.append(call)

  def init():
    with nn.intercept_methods(_outermost_calls(record)):
      return model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3), jnp.float32))

  variables = jax.eval_shape(init)
  return variables, calls


def _num(tree: Any) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def module_table(model: nn.Module, size: int | None = None) -> list[Row]:
  """Per-module rows in forward order: ``stem`` (the convolutions before the first Inception
  module), each Inception module, each aux head, and ``classifier``."""
  size = size or default_size(model)
  variables, calls = _trace(model, size)
  params = variables.get('params', {})
  rows: dict[str, Row] = {}

  def row_name(top: str, module: nn.Module | None) -> str:
    if isinstance(module, layers.ConvBN):
      return 'stem'
    if top == 'fc' or isinstance(module, nn.Dropout):
      return 'classifier'
    return top

  top_modules = {c['path'][0]: c['module'] for c in calls if len(c['path']) == 1}
  for call in calls:
    if not call['path']:
      continue
    top = call['path'][0]
    name = row_name(top, top_modules.get(top))
    row = rows.setdefault(name, Row(name, aux=isinstance(top_modules.get(top), _AUX_HEADS)))
    row.macs += call['macs']
    if len(call['path']) == 1:
      row.output_shape = call['out_shape'][1:]
  for top, subtree in params.items():
    rows[row_name(top, top_modules.get(top))].params += _num(subtree)
  return list(rows.values())


def summarize(model: nn.Module, size: int | None = None) -> dict[str, Any]:
  """Totals and rows as one JSON-able dict (what ``--json`` prints)."""
  size = size or default_size(model)
  rows = module_table(model, size)
  main = [r for r in rows if not r.aux]
  aux = [r for r in rows if r.aux]
  return dict(
      model=type(model).__name__, size=size,
      total_params=sum(r.params for r in rows),
      total_macs=sum(r.macs for r in main),
      params_without_aux=sum(r.params for r in main),
      aux_params=sum(r.params for r in aux),
      aux_macs=sum(r.macs for r in aux),
      rows=[dict(dataclasses.asdict(r), output_shape=list(r.output_shape)) for r in rows])


def count_params(model: nn.Module, size: int | None = None) -> int:
  """Trainable parameters (aux heads included when built; BN running stats excluded)."""
  size = size or default_size(model)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3), jnp.float32)))
  return _num(variables.get('params', {}))


def count_macs(model: nn.Module, size: int | None = None, include_aux: bool = False) -> int:
  """Multiply-adds of one ``size`` x ``size`` image at inference (plus the aux heads if asked)."""
  return sum(r.macs for r in module_table(model, size) if include_aux or not r.aux)


# ---------------------------------------------------------------------------------------------
# GoogLeNet paper, Section 4 / Fig. 2: what the 1x1 reductions save.


def _module_cost(module: nn.Module, in_shape: Sequence[int]) -> tuple[int, int, tuple[int, ...]]:
  """(params, MACs, output shape) of one module on a [1, H, W, C] input."""
  calls: list[int] = []
  out_shape: list[tuple[int, ...]] = []

  def record(module, args, out):
    if isinstance(module, (nn.Conv, nn.Dense)):
      calls.append(_layer_macs(module, args[0], out))
    if module.path == ():
      out_shape.append(tuple(out.shape))

  def init():
    with nn.intercept_methods(_outermost_calls(record)):
      return module.init(jax.random.PRNGKey(0), jnp.zeros((1, *in_shape[1:]), jnp.float32))

  variables = jax.eval_shape(init)
  return _num(variables.get('params', {})), sum(calls), out_shape[-1][1:]


def _googlenet_entries() -> list[str]:
  return [n for n in models.available()
          if issubclass(models.model_class(models.spec(n).constructor), googlenet_lib.GoogLeNet)]


def naive_vs_reduced(model: googlenet_lib.GoogLeNet, size: int | None = None
                     ) -> list[dict[str, Any]]:
  """Per Inception module: the naive form (Fig. 2a) and the reduced form (Fig. 2b) on the same
  input with the same 1x1/3x3/5x5 filter counts, and what the reductions save."""
  if not isinstance(model, googlenet_lib.GoogLeNet):
    raise errors.UserError('--naive-vs-reduced applies to the GoogLeNet family '
                           f'({", ".join(_googlenet_entries())})')
  size = size or default_size(model)
  _, calls = _trace(model, size)
  inputs = {c['path'][0]: c['in_shape'] for c in calls
            if len(c['path']) == 1 and isinstance(c['module'], googlenet_lib.InceptionV1Module)}
  lowering = contract.chosen_lowering(model.label, model.lowering)
  conv = layers.conv_block(model.use_bn, model.width_multiplier, model.dtype, lowering)
  result = []
  for spec in googlenet_lib.TABLE1:
    costs = {}
    for kind in ('naive', 'reduced'):
      module = googlenet_lib.InceptionV1Module(
          *spec[1:], conv_block=conv, kind=kind, branch5x5_kernel=model.branch5x5_kernel,
          factorize_5x5=model.factorize_5x5, lowering=lowering)
      costs[kind] = _module_cost(module, inputs[spec.name])
    (np_, nm, nshape), (rp, rm, rshape) = costs['naive'], costs['reduced']
    result.append(dict(
        name=spec.name, input_shape=list(inputs[spec.name][1:]),
        naive_params=np_, naive_macs=nm, naive_output_shape=list(nshape),
        reduced_params=rp, reduced_macs=rm, reduced_output_shape=list(rshape),
        params_saved=np_ - rp, macs_saved=nm - rm,
        macs_ratio=nm / rm if rm else float('inf')))
  return result
