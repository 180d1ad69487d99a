"""A sweep config and the grid of runs it expands to (names, overrides, launch commands).

Pure data: nothing here touches a run directory, so ``--print_commands`` and the tests expand a
sweep without running anything.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Sequence

import ml_collections
from ml_collections.config_dict import placeholder

from inception_jax.config.loading import split_config_spec
from inception_jax.errors import UserError


def _placeholders_like(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A ConfigDict with the structure of ``config`` and an unset typed placeholder per leaf."""
  out = ml_collections.ConfigDict()
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out[key] = _placeholders_like(value)
    else:
      kind = config.get_type(key)
      out[key] = placeholder(kind if kind is not type(None) else object)
  return out


def override_placeholders() -> ml_collections.ConfigDict:
  """Unset placeholders for every training-config field (``sweep_config().overrides``)."""
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
  return _placeholders_like(schema.base_config())


def sweep_config(base: str, *, seeds: Sequence[int] = (0, 1, 2),
                 description: str = '') -> ml_collections.ConfigDict:
  """The skeleton every ``configs/ablations/*.py`` fills in (see the module docstring)."""
  c = ml_collections.ConfigDict()
  c.description = description
  c.base = base
  c.train_script = 'train.py'
  c.overrides = override_placeholders()
  # Insertion order is the order of the runs and of the report's rows.
  c.axes = ml_collections.ConfigDict(allow_dotted_keys=True, sort_keys=False)
  c.variants = ml_collections.ConfigDict(sort_keys=False)
  c.variant_axis = 'variant'
  c.seeds = tuple(int(s) for s in seeds)
  return c


def flatten(tree: Any, prefix: str = '', *, skip_none: bool = False) -> dict[str, Any]:
  """Nested ConfigDict / dict -> ``{'a.b': leaf}`` in insertion order."""
  out: dict[str, Any] = {}
  items = tree.items() if hasattr(tree, 'items') else ()
  for key, value in items:
    path = f'{prefix}{key}'
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(flatten(value, path + '.', skip_none=skip_none))
    elif not (skip_none and value is None):
      out[path] = value
  return out


def flag_value(value: Any) -> str:
  """A value as config_flags parses it back (``--config.KEY=<this>``)."""
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, float):
    return repr(value)
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def label_value(value: Any) -> str:
  """A value as a directory-name component (``0.3``, ``7x7``, ``False``)."""
  if isinstance(value, (list, tuple)):
    text = '-'.join(label_value(v) for v in value)
  else:
    text = repr(value) if isinstance(value, float) else str(value)
  return ''.join('_' if ch in '/\\: \t\n*?' else ch for ch in text) or '_'


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of the sweep."""

  name: str                   # sub-workdir, e.g. 'aux_weight=0.3/seed=1'
  cell: dict[str, Any]        # the cell's coordinates: short axis name -> value
  seed: int
  base: str                   # training config, path[:arg] (path absolute)
  overrides: dict[str, Any]   # dotted training-config field -> value, seed last
  workdir: str                # absolute

  def command(self, python: str, train_script: str, display=lambda p: p) -> list[str]:
    """The train.py command line (``display`` maps paths for printing)."""
    path, arg = split_config_spec(self.base)
    config = display(path) + (f':{arg}' if arg is not None else '')
    return ([python, display(train_script), f'--config={config}',
             f'--workdir={display(self.workdir)}'] +
            [f'--config.{k}={flag_value(v)}' for k, v in self.overrides.items()])


def find_file(path: str, search: Sequence[str], what: str) -> str:
  """``path`` itself when absolute, else its first hit in ``search``; a one-line error if none."""
  if os.path.isabs(path):
    if os.path.exists(path):
      return path
    raise UserError(f'{what} {path!r} does not exist')
  for directory in search:
    candidate = os.path.join(directory, path)
    if os.path.exists(candidate):
      return os.path.abspath(candidate)
  raise UserError(f'{what} {path!r} not found in the working directory nor above the sweep config '
                  f'({", ".join(search[:3])}...)')


def search_path(sweep_config_file: str | None) -> list[str]:
  """Where relative ``base`` / ``train_script`` paths are looked up: the working directory,
  then every directory above the sweep config file (the repository root among them), then the
  directory above the installed package."""
  dirs = [os.getcwd()]
  if sweep_config_file:
    d = os.path.dirname(os.path.abspath(split_config_spec(sweep_config_file)[0]))
    while True:
      dirs.append(d)
      parent = os.path.dirname(d)
      if parent == d:
        break
      d = parent
  dirs.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  return list(dict.fromkeys(dirs))


def _short_names(paths: Sequence[str]) -> dict[str, str]:
  """Axis paths -> their last component, unless two axes would share it."""
  last = [p.rsplit('.', 1)[-1] for p in paths]
  return {p: (l if last.count(l) == 1 else p) for p, l in zip(paths, last)}


def expand(config: ml_collections.ConfigDict, workdir: str, *,
           search: Sequence[str] = ()) -> list[Run]:
  """The runs of a sweep config, seed-major (all cells of the first seed first)."""
  search = list(search) or [os.getcwd()]
  workdir = os.path.abspath(workdir)
  seeds = tuple(config.get('seeds') or ())
  if not seeds:
    raise UserError('the sweep has no seeds; set config.seeds, e.g. --config.seeds="(0,)"')
  if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
    raise UserError(f'config.seeds must be integers, e.g. --config.seeds="(0, 1)", got {seeds!r}')
  if len(set(seeds)) != len(seeds):
    raise UserError(f'config.seeds has duplicates: {seeds}')

  def resolve(spec: str) -> str:
    path, arg = split_config_spec(spec)
    path = find_file(path, search, 'training config')
    return path + (f':{arg}' if arg is not None else '')

  base = resolve(config.base)
  common = flatten(config.get('overrides') or {}, skip_none=True)
  axes = list((config.get('axes') or {}).items())
  for name, values in axes:
    if not isinstance(values, (tuple, list)) or not values:
      raise UserError(f'axis {name!r} needs a non-empty tuple of values, got {values!r}')
    if name == 'seed':
      raise UserError('"seed" is not an axis; set config.seeds')
  short = _short_names([name for name, _ in axes])
  variant_axis = config.get('variant_axis') or 'variant'
  variants = list((config.get('variants') or {}).items()) or [(None, {})]

  cells = []
  for (vname, vover), combo in itertools.product(
      variants, itertools.product(*[values for _, values in axes])):
    vflat = flatten(vover)
    cell_base = resolve(vflat.pop('base')) if 'base' in vflat else base
    cell: dict[str, Any] = {}
    parts = []
    if vname is not None:
      cell[variant_axis] = vname
      parts.append(f'{variant_axis}={label_value(vname)}')
    overrides = dict(common)
    overrides.update(vflat)
    for (axis, _), value in zip(axes, combo):
      cell[short[axis]] = value
      parts.append(f'{short[axis]}={label_value(value)}')
      overrides[axis] = value
    cells.append((','.join(parts), cell, cell_base, overrides))
  names = [c[0] for c in cells]
  if len(set(names)) != len(names):
    raise UserError('two cells of the sweep get the same directory name; give variants and axis '
                    'values distinct names')

  runs = []
  for seed in seeds:
    for label, cell, cell_base, overrides in cells:
      name = '/'.join(p for p in (label, f'seed={int(seed)}') if p)
      ov = {k: v for k, v in overrides.items() if k != 'seed'}
      ov['seed'] = int(seed)
      runs.append(Run(name=name, cell=dict(cell), seed=int(seed), base=cell_base, overrides=ov,
                      workdir=os.path.join(workdir, *name.split('/'))))
  return runs
