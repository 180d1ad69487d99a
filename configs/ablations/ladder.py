r"""The Table 3 ladder of "Rethinking the Inception Architecture" as one sweep: a run per row.

Rows are the files of configs/ladder/ (GoogLeNet, BN-GoogLeNet, BN-Inception, Inception-v2,
+RMSProp, +Label Smoothing, +Factorized 7x7, +BN-auxiliary); each carries the paper's errors in
``config.paper``, so the report's table shows "top-1 err (run)" next to "top-1 err (paper)".
Directories: ``row=01_googlenet/seed=0`` ...

  python -m inception_jax.tools.sweep --config=configs/ablations/ladder.py --workdir=sweeps/ladder
  python -m inception_jax.tools.sweep --config=configs/ablations/ladder.py:imagenet \
      --workdir=/ckpt/ladder --config.overrides.data_dir=/data/tfds --print_commands

Options (``:opt``):
  digits (default): every row's ``:digits`` smoke config (the row's recipe on the offline digits
    for 4 epochs, narrow networks): checks that all eight rows train; the numbers mean nothing
    next to the paper's. Seeds (0, 1, 2).
  imagenet: the rows on ImageNet with the project's recipes (rows 1-3:
    configs/googlenet_imagenet.py, 224 px, 150 epochs at batch 256; rows 4-8:
    configs/inception_v3_imagenet.py, 299 px, 170 epochs at batch 1024); one seed (the paper
    reports single runs): ``--config.seeds='(0, 1, 2)'`` for more.
"""

from inception_jax.config import loading as config_loading
from inception_jax.tools import sweep

ROWS = ('01_googlenet', '02_bn_googlenet', '03_bn_inception', '04_inception_v2', '05_rmsprop',
        '06_label_smoothing', '07_factorized_7x7', '08_bn_auxiliary')


def get_config(arg: str | None = None):
  """The ladder sweep (``arg``: 'digits' or 'imagenet')."""
  dataset, _ = config_loading.dataset_option(arg, default='digits')
  c = sweep.sweep_config(f'configs/ladder/{ROWS[0]}.py:{dataset}',
                         seeds=(0,) if dataset == 'imagenet' else (0, 1, 2),
                         description=f'Rethinking the Inception Architecture, Table 3 ({dataset})')
  c.variant_axis = 'row'
  for row in ROWS:
    c.variants[row] = {'base': f'configs/ladder/{row}.py:{dataset}'}
  return c
