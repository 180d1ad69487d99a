r"""Ablation sweeps: a grid of ordinary ``train.py`` runs, one sub-workdir each, then a report.

  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py --workdir=sweeps/aux
  python -m inception_jax.tools.sweep --config=configs/ablations/aux_weight.py:imagenet \
      --workdir=/ckpt/aux --config.overrides.data_dir=/data/tfds --print_commands
  python -m inception_jax.tools.sweep --config=configs/ablations/inception_v3_factorizations.py \
      --workdir=sweeps/v3 --config.seeds='(0,)' --only='variant=stem_7x7/*'

A sweep config (``configs/ablations/*.py``, ``get_config(arg)``; start from :func:`sweep_config`)
holds:

* ``base``: the training config file every run starts from, ``path[:arg]`` exactly as train.py's
  ``--config`` takes it (relative paths are looked up from the working directory, then from the
  directories above the sweep config, i.e. the repository root).
* ``overrides``: training-config fields set for every run. It has a typed, unset placeholder for
  every field of the schema (``inception_jax.config.schema``), so any field can be set from the
  command line: ``--config.overrides.num_train_steps=100``,
  ``--config.overrides.model_overrides.width_multiplier=0.5``.
* ``axes``: axis name (a training-config field, dotted for nested ones, e.g.
  ``model_overrides.stem``) -> tuple of values. The grid is their product.
* ``variants`` (optional): name -> nested overrides, one more axis named ``variant_axis``
  (``variant`` by default) whose cells set several fields at once (e.g. one switch off at a time
  instead of the full product); the reserved key ``base`` replaces the training config file.
* ``seeds``: every cell runs once per seed (``config.seed``, which seeds init, data order,
  augmentation and dropout).

Each run is ``python train.py --config=BASE --workdir=DIR/NAME --config.K=V ...`` in its own
sub-workdir ``NAME`` = ``axis=value[,axis=value...]/seed=S`` (e.g. ``aux_weight=0.3/seed=1``; the
last component of a dotted axis names it when that is unambiguous). Runs go one after another,
seed-major (every cell of seed 0 first, so a partial sweep already compares all cells), each as a
subprocess: isolated, and exactly what a user would type. Its output goes to the terminal and to
``NAME/train.log``.

Completion marker (nothing is added to the training system): a run is *finished* when its latest
committed checkpoint ``checkpoints/<S>`` has metadata with ``num_train_steps == S`` and
``metrics.jsonl`` holds an ``eval`` line at step ``S``. train.py writes that line only after the
final checkpoint was saved, just before it returns, so a run killed at any point is not finished;
rerunning it resumes from its last checkpoint (a run killed during its final evaluation only
re-evaluates). A finished run whose ``config.json`` differs from what the sweep would launch
(fields other than logging/checkpoint cadence, ``data_dir``, devices) is launched again with a
warning: train.py resumes it from its last checkpoint (it trains further if ``num_train_steps``
grew, refuses with a one-line error if the network changed; delete the run directory to retrain
from scratch).

A failed run is reported and the sweep goes on with the next; at the end it writes the report
(:mod:`inception_jax.tools.report`: results.csv, results.md, PNG plots) and exits 1 listing the failures.
SIGTERM / Ctrl-C are passed to the running train.py (which saves a checkpoint), then the sweep
writes the report and stops (exit 143 / 130); rerun the same command to continue.
``--print_commands`` prints one launch command per run instead (for a cluster) and runs nothing;
``--only=GLOB[,GLOB]`` restricts the sweep to the runs whose names match (the report leaves the
others out unless they ran before). ``DIR/sweep.json`` records the grid (every run's coordinates,
seed and command) and ``--only`` for the report. Every run's config is built and validated
(``schema.validate_config``) before the first one starts. Exit status 2: a one-line error in the
sweep config or flags.
"""

from __future__ import annotations

# The package's parts by concern: grid (the config and its runs), resume (is a finished run still
# current), runner (launching, the manifest, the report), cli (the command line). Everything a
# caller or a sweep config uses is re-exported here.
# Config-file loading lives in config.loading (config files use it without this CLI); the sweep
# uses the same functions, and they stay reachable as ``sweep.load_config_file`` and so on.
from inception_jax.config.loading import (
    apply_overrides, load_config_file, load_config_module, parse_arg, split_config_spec)
from inception_jax.tools.report import LOG_FILE, MANIFEST
from inception_jax.tools.sweep.cli import main
from inception_jax.tools.sweep.grid import (
    Run, expand, find_file, flag_value, flatten, label_value, override_placeholders, search_path,
    sweep_config)
from inception_jax.tools.sweep.resume import (
    CADENCE_FIELDS, ExpectedConfigs, config_drift, config_drift_dicts)
from inception_jax.tools.sweep.runner import run_sweep

__all__ = ['CADENCE_FIELDS', 'LOG_FILE', 'MANIFEST', 'ExpectedConfigs', 'Run', 'apply_overrides',
           'config_drift', 'config_drift_dicts', 'expand', 'find_file', 'flag_value', 'flatten',
           'label_value', 'load_config_file', 'load_config_module', 'main', 'override_placeholders',
           'parse_arg', 'run_sweep', 'search_path', 'split_config_spec', 'sweep_config']
