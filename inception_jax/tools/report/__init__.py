r"""Sweep results rebuilt from the run directories: results.csv, results.md and PNG plots.

  python -m inception_jax.tools.report sweeps/aux            # after (or during) a sweep
  python -m inception_jax.tools.report sweeps/aux --out /tmp/report --no_plots

Runs come from the sweep's ``sweep.json`` (written by :mod:`inception_jax.tools.sweep`: every run of the
grid, so runs not started yet show as *missing*, except those the sweep's ``--only`` left out,
which are only counted); without it, every directory below ``DIR`` that holds a ``metrics.jsonl``,
``config.json`` or ``checkpoints/`` is a run, and its path components ``key=value`` are its
coordinates (``seed=N`` the seed). Each run is read from what train.py leaves behind:
``metrics.jsonl`` (train/eval lines), ``config.json`` and the checkpoint metadata.

* ``results.csv``: one row per run (those ``--only`` left out excepted): its coordinates, seed,
  status (``finished``; ``partial``: started but not finished, i.e. running, failed or stopped;
  ``missing``: never started), last step, final and best eval top-1/top-5 (%), the step of the
  best, params, MACs, median train images/s, model, dataset, image size, and the paper's errors
  when the run's config carries ``paper`` (``configs/ladder``).
* ``results.md``: one row per variant (runs that differ only in the seed): mean ± sample standard
  deviation (n - 1) over its finished seeds of final and best top-1/top-5, params, MACs, images/s,
  and for ladder runs the paper's error next to the run's. A variant without a finished run shows
  its partial runs, marked.
* ``learning_curves.png`` (eval top-1 and train loss against step, mean over seeds, min-max band),
  ``accuracy_vs_aux_weight.png`` (when ``aux_weight`` is a coordinate), ``accuracy_vs_macs.png``
  (when the variants' MACs differ; the output says when and why it is skipped).

Definitions: *final* is the evaluation at the run's last step (train.py evaluates at the end),
*best* the highest evaluation seen (top-1 and top-5 each on its own). *Params* counts the
inference network (aux heads excluded; BN statistics excluded) and *MACs* are multiply-adds per
image at the run's ``image_size``, both from :mod:`inception_jax.models.summary` (torchvision's
convention). *images/s* is the median of the train lines' ``images_per_sec`` (compilation and
checkpoint/eval pauses excluded by the training loop).
"""

from __future__ import annotations

# The package's parts by concern: runs (one run directory), collection (the sweep's runs and
# variants), tables (csv, markdown), plots (PNG), writer (all of them), cli (the command line).
# Everything a caller uses is re-exported here.
from inception_jax.tools.report.cli import main
from inception_jax.tools.report.collection import (
    Variant, collect, discover_runs, group, only_patterns)
from inception_jax.tools.report.plots import (
    macs_plot_skipped, plot_accuracy_vs, plot_learning_curves)
from inception_jax.tools.report.runs import (
    CHECKPOINTS, CONFIG_FILE, KNOWN_NUM_CLASSES, LOG_FILE, MANIFEST, METRICS_FILE, NOT_SELECTED,
    CostCache, RunResult, RunState, checkpoint_metadata, checkpoint_steps, finite, read_metrics,
    read_run, run_state)
from inception_jax.tools.report.tables import CSV_FIELDS, cell_fields, human, markdown, write_csv
from inception_jax.tools.report.writer import write_report

# The tests reach these helpers by their private names.
_human = human
_macs_plot_skipped = macs_plot_skipped

__all__ = ['CHECKPOINTS', 'CONFIG_FILE', 'CSV_FIELDS', 'KNOWN_NUM_CLASSES', 'LOG_FILE', 'MANIFEST',
           'METRICS_FILE', 'NOT_SELECTED', 'CostCache', 'RunResult', 'RunState', 'Variant',
           'cell_fields', 'checkpoint_metadata', 'checkpoint_steps', 'collect', 'discover_runs',
           'finite', 'group', 'human', 'macs_plot_skipped', 'main', 'markdown', 'only_patterns',
           'plot_accuracy_vs', 'plot_learning_curves', 'read_metrics', 'read_run', 'run_state',
           'write_csv', 'write_report']
