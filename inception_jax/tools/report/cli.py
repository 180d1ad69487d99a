"""``python -m inception_jax.tools.report``: rebuilds a sweep's tables and plots from its runs."""

from __future__ import annotations

from typing import Sequence

from inception_jax import errors
from inception_jax.tools.report.writer import write_report


def main(argv: Sequence[str] | None = None) -> int:
  """Parses the command line (``argv`` without the program name), writes the report, prints it."""
  parser = errors.ArgumentParser(
      prog='python -m inception_jax.tools.report',
      description='Rebuild results.csv, results.md and the plots of a sweep from its run dirs.')
  parser.add_argument('sweep_dir', help='the sweep --workdir (or any directory of runs)')
  parser.add_argument('--out', default=None, help='where to write (default: sweep_dir)')
  parser.add_argument('--no_plots', action='store_true', help='tables only')
  args = parser.parse_args(argv)
  notes: list[str] = []
  paths = write_report(args.sweep_dir, args.out, plots=not args.no_plots, log=notes.append)
  with open(paths[1]) as f:
    print(f.read(), end='')
  for note in notes:
    print(note)
  print('wrote ' + ', '.join(paths))
  return 0
