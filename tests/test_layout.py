"""The package's layers, as ARCHITECTURE.md draws them: imports flow one way, tools sit on top.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function counts
as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'inception_jax'
MAX_LINES = 450
# Each layer may import only layers listed before it (and itself). The foundation modules
# (errors, progress, xla_flags) import nothing of the package but each other.
LAYERS = ('foundation', 'lowering', 'models', 'config', 'data', 'training', 'inference', 'convert',
          'tools')
FOUNDATION = {'inception_jax', 'inception_jax.errors', 'inception_jax.progress',
              'inception_jax.xla_flags'}


def _modules() -> dict[str, pathlib.Path]:
  found = {}
  for path in PACKAGE.rglob('*.py'):
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    if parts[-1] == '__init__':
      parts = parts[:-1]
    found['.'.join(parts)] = path
  return found


def _imports(path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
  """The package modules ``path`` imports, at any depth of the file."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        full = f'{node.module}.{alias.name}'
        out.add(full if full in modules else node.module)
    elif isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
  return {m for m in out if m in modules}


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    # A module's import of its own package (``from inception_jax.models import layers`` resolves
    # to the sibling) is how Python reaches siblings, not a dependency on the package's __init__.
    graph[name] = {m for m in _imports(path, modules) if m != name and not name.startswith(m + '.')}
  return graph


def _layer(module: str) -> str:
  if module in FOUNDATION:
    return 'foundation'
  return module.split('.')[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def test_no_import_cycle():
  assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_one():
  assert _cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_every_module_belongs_to_a_layer():
  assert {_layer(m) for m in _graph()} <= set(LAYERS)


def test_imports_point_down_the_layers():
  upward = []
  for module, imported in sorted(_graph().items()):
    rank = LAYERS.index(_layer(module))
    upward += [f'{module} -> {m}' for m in sorted(imported) if LAYERS.index(_layer(m)) > rank]
  assert upward == []


def _runs_as_main(path: pathlib.Path) -> bool:
  return any(isinstance(node, ast.If) and '__name__' in ast.unparse(node.test)
             for node in ast.parse(path.read_text()).body)


def test_tools_are_commands_and_only_tools_are():
  """``inception_jax.tools.X`` runs as ``python -m`` (a module with a main guard, or a package
  with ``__main__.py``; the package's other modules are its parts); no library has a command."""
  for module, path in sorted(_modules().items()):
    parts = module.split('.')
    if _layer(module) == 'tools':
      if len(parts) == 3 and path.name == '__init__.py':
        assert (path.parent / '__main__.py').exists(), f'{module} has no __main__.py'
      elif len(parts) == 3:
        assert _runs_as_main(path), f'{module} is in tools/ but runs nothing as python -m'
    else:
      assert not _runs_as_main(path), f'{module} is a library with a command line: move it to tools/'


@pytest.mark.parametrize('path', sorted(PACKAGE.rglob('*.py')), ids=lambda p: str(
    p.relative_to(PACKAGE)))
def test_no_file_is_too_long_to_read(path):
  assert len(path.read_text().splitlines()) <= MAX_LINES
