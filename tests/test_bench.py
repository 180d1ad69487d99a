"""The benchmark runs end to end at a tiny size and writes the documented JSON; the torchvision
comparison runs when torch is installed and fails with a one-line hint when it is not.

No wall-clock assertions: the figures are whatever this machine gives.
"""

import builtins
import json
import math
import subprocess
import sys

import pytest

try:  # Before anything imports TensorFlow (torchvision's triton and TensorFlow clash).
  import torch  # pylint: disable=unused-import
  import torchvision  # pylint: disable=unused-import
  HAVE_TORCH = True
except ImportError:
  HAVE_TORCH = False

from inception_jax.errors import UserError
from inception_jax.tools.bench import allocator, arguments, cli, loop, lowerings, pipeline_rate
from inception_jax.tools.bench import report as report_lib
from inception_jax.tools.bench import timing, torchvision_compare, workload

TINY = ['--model', 'googlenet_tv', '--batch', '2', '--size', '32', '--steps', '2', '--warmup',
        '1', '--set', 'width_multiplier=0.125', '--num-classes', '10']


def _positive(x):
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow  # benchmarks GoogLeNet end to end: compiles its train and eval steps
def test_end_to_end_json(tmp_path, capsys):
  out = tmp_path / 'bench.json'
  assert cli.main(TINY + ['--pipeline', 'folder', '--pipeline-batches', '2',
                          '--peak-size', '256', '--json', str(out)]) == 0
  report = json.loads(out.read_text())
  assert set(report_lib.JSON_KEYS) <= set(report)
  assert (report['model'], report['batch'], report['size'], report['dtype']) == (
      'googlenet_tv', 2, 32, 'float32')
  for name in ('train', 'eval'):
    section = report[name]
    assert set(report_lib.STEP_KEYS) <= set(section)
    rates = section['images_per_second']
    assert rates['min'] <= rates['median'] <= rates['max']
    assert len(section['step_seconds']['all']) == 2
    assert _positive(section['compile_seconds']) and _positive(section['flops_per_second'])
    assert _positive(section['percent_of_peak'])
  assert report['train']['metrics_finite']
  assert _positive(report['train']['images_per_second_pipelined'])
  # Training counts the aux heads (3 x 2 x MACs), evaluation does not (2 x MACs).
  macs = report['macs_per_image']
  assert macs['training_with_aux'] > macs['inference'] > 0
  assert report['flops_per_image'] == {'train': 6 * macs['training_with_aux'],
                                       'eval': 2 * macs['inference']}
  assert _positive(report['peak']['flops_per_second'])
  assert _positive(report['init']['seconds'])
  assert report['memory']['host_peak_bytes'] > 0
  pipeline = report['pipeline']
  assert pipeline['dataset'] == 'folder' and _positive(pipeline['images_per_second'])
  assert pipeline['batch_shape'] == [2, 32, 32, 3]
  assert report['options']['conv'] == 'lowering.FastConv' and report['options']['plain'] == []
  assert report['loop'] is None and report['compare'] is None
  printed = capsys.readouterr().out
  assert 'train:' in printed and 'img/s' in printed


def test_compare_needs_torch(monkeypatch):
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name in ('torch', 'torchvision'):
      raise ImportError(name)
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, '__import__', no_torch)
  with pytest.raises(UserError, match=r"pip install 'inception_jax\[bench\]'"):
    torchvision_compare.import_torch()


needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="torch/torchvision not installed (pip install 'inception_jax[bench]')")


@needs_torch
def test_compare_torchvision_tiny():
  args = arguments.parse_args(['--model', 'googlenet_tv', '--batch', '2', '--size', '32',
                               '--steps', '1', '--warmup', '0', '--num-classes', '10',
                               '--compare', 'torchvision', '--threads', '1'])
  result = torchvision_compare.bench_torchvision(args, aux_weight=0.3, on_gpu=False)
  assert set(result['formats']) == {'nchw', 'channels_last'}
  assert result['best_format'] in result['formats']
  for fmt in result['formats'].values():
    assert _positive(fmt['train']['images_per_second']['median'])
    assert _positive(fmt['eval']['images_per_second']['median'])
  assert result['device'] == 'cpu' and result['threads'] == 1


@needs_torch
def test_compare_refuses_a_different_architecture():
  args = arguments.parse_args(TINY + ['--compare', 'torchvision'])
  with pytest.raises(UserError, match='published architecture'):
    torchvision_compare.bench_torchvision(args, aux_weight=0.3, on_gpu=False)


def test_bad_flags_are_one_line_errors():
  proc = subprocess.run([sys.executable, '-m', 'inception_jax.tools.bench', '--batch', '0'],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == ['error: --batch must be >= 1 (got 0)']
  with pytest.raises(UserError, match='--size'):
    arguments.parse_args(['--size', 'big'])


def test_missing_allocator_is_a_user_error(monkeypatch):
  monkeypatch.setattr(allocator, 'find_allocator', lambda name: None)
  monkeypatch.delenv(allocator._REEXEC_MARK, raising=False)
  monkeypatch.setattr(allocator, 'loaded_allocator', lambda: 'system')
  args = arguments.parse_args(['--allocator', 'tcmalloc'])
  with pytest.raises(UserError, match='apt-get install libtcmalloc-minimal4'):
    allocator.maybe_reexec(args, ['--allocator', 'tcmalloc'])


def test_summarize_times():
  s = timing.summarize_times([1.0, 2.0, 4.0], batch=8)
  assert s['images_per_second'] == {'median': 4.0, 'min': 2.0, 'max': 8.0}
  assert s['step_seconds']['median'] == 2.0


@pytest.mark.slow  # runs the real training loop
def test_loop_on_in_memory_batches(tmp_path):
  """--loop with --pipeline none runs the real training loop on one in-memory batch (no tf.data:
  how it runs on a GPU image without TensorFlow), in bfloat16 images with --half."""
  args = arguments.parse_args(TINY + ['--pipeline', 'none', '--loop', '--half'])
  out = loop.bench_loop(args, str(tmp_path), None, bare_images_per_second=1.0)
  assert set(out) == {'constant_batch', 'bare_images_per_second', 'note'}
  run = out['constant_batch']
  assert _positive(run['images_per_second']) and _positive(run['wall_seconds'])
  metrics = [json.loads(line) for line in
             (tmp_path / 'loop_constant_batch' / 'metrics.jsonl').read_text().splitlines()]
  assert [m['step'] for m in metrics if 'train' in json.dumps(m)] == [args.steps, 2 * args.steps]


def test_the_aux_weight_is_the_training_default_unless_given():
  """One source for the default: the schema's, for every model; --aux-weight replaces it."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  from inception_jax.config import schema  # pylint: disable=g-import-not-at-top
  assert workload.default_aux_weight() == schema.base_config().aux_weight
  assert not hasattr(models.spec('inception_v3'), 'default_aux_weight')
  config = workload.train_config
  for model in ('googlenet', 'inception_v3'):
    assert config(arguments.parse_args(['--model', model])).aux_weight == (
        workload.default_aux_weight())
  assert config(arguments.parse_args(TINY + ['--aux-weight', '0.7'])).aux_weight == 0.7


def test_plain_builds_a_lowering_and_changes_nothing_else():
  """--plain gives the benchmarked model a Lowering with the named parts plain; the backend's
  own lowering, which every other model in the process gets, stays as it was."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  backend = lowering.for_backend(network='googlenet')
  plain = lowering.plain()
  args = arguments.parse_args(TINY + ['--plain', 'norm', '--plain-conv'])
  assert args.plain == ['norm', 'conv']
  chosen = lowerings.lowering_for(args.plain, 'googlenet')
  # Winograd is one of FastConv's lowerings: plain convolutions have none.
  assert chosen == dataclasses.replace(backend, conv=plain.conv, winograd=False, norm=plain.norm)
  assert workload.build_model(args).lowering == chosen
  assert lowering.for_backend(network='googlenet') == backend
  assert models.create('googlenet_tv').lowering is None
  assert lowerings.lowering_for(list(lowerings.PLAIN_CHOICES), 'googlenet') == plain
  assert lowerings.lowering_for([], 'googlenet') == backend
  # The lowering is chosen per network: Inception v3's --plain starts from v3's own.
  assert lowerings.lowering_for(['norm'], 'inception_v3') == dataclasses.replace(
      lowering.for_backend(network='inception_v3'), norm=plain.norm)
  # What the report says each layer runs.
  cpu = lowering.for_backend('cpu', network='googlenet')
  assert lowerings.lowering_names(cpu) == {
      'conv': 'lowering.FastConv', 'norm': 'lowering.FastBatchNorm',
      'pool': 'lowering.max_pool gather-form gradient, sliced eval forward',
      'winograd': 'lowering.winograd_conv3x3 for wide 3x3s'}
  assert lowerings.lowering_names(dataclasses.replace(
      cpu, conv=plain.conv, winograd=False, norm=plain.norm)) == {
          'conv': 'nn.Conv', 'norm': 'nn.BatchNorm',
          'pool': 'lowering.max_pool gather-form gradient, sliced eval forward',
          'winograd': 'no Winograd'}
  assert lowerings.lowering_names(plain) == {
      'conv': 'nn.Conv', 'norm': 'nn.BatchNorm', 'pool': 'autodiff of reduce_window',
      'winograd': 'no Winograd'}


def test_pipeline_rate_times_warm_batches_and_counts_only_real_examples():
  """``--pipeline-only``: an evaluation pass that ends is restarted and warmed up outside the
  timed span, and its padded examples (mask False) are not counted as images. A fake clock that
  only the fake pipeline advances makes the figures exact."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  now = [0.0]
  passes = []

  def one_pass():
    now[0] += 100.0  # pipeline start-up: must not be timed
    passes.append(now[0])
    for i in range(4):  # 4 batches of 8; the last holds 5 real examples and 3 padded
      now[0] += 1.0
      yield {'label': np.zeros(8, np.int32), 'mask': np.arange(8) < (8 if i < 3 else 5)}

  r = pipeline_rate.time_batches(one_pass, batches=5, warmup=1, clock=lambda: now[0])
  # Pass 1 times batches 2-4 (8 + 8 + 5 images), pass 2 batches 2-3 (8 + 8); 1 s each.
  assert len(passes) == 2
  assert (r['images'], r['seconds'], r['images_per_second']) == (37, 5.0, 7.4)
  # Training batches carry no mask: every example counts.
  ticks = iter(range(100))
  train = pipeline_rate.time_batches(lambda: iter([{'label': np.zeros(8)}] * 3), batches=4,
                                     warmup=0, clock=lambda: float(next(ticks)))
  assert train['images'] == 32
  with pytest.raises(UserError, match='lower --warmup'):
    pipeline_rate.time_batches(one_pass, batches=1, warmup=4, clock=lambda: now[0])


def test_pipeline_against_its_decode_only_floor_interleaved():
  """Pipeline and decode-only floor alternate (ABBA) in the same run; each sums its rounds, the
  fraction is the rates' ratio and the cores an accelerator needs are its rate over the per-core
  rate. A fake clock that only the fake pipelines advance makes every figure exact."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  now = [0.0]
  order = []

  def arm(name, seconds_per_batch):
    def make():
      order.append(name)
      while True:
        now[0] += seconds_per_batch
        yield {'label': np.zeros(8, np.int32)}
    return make

  runs = pipeline_rate.interleaved({'pipeline': arm('pipeline', 2.0),
                                    'decode_only': arm('decode_only', 1.0)},
                                   batches=5, warmup=1, rounds=3, clock=lambda: now[0])
  assert order == ['pipeline', 'decode_only', 'decode_only', 'pipeline', 'pipeline',
                   'decode_only']
  pipe, floor = runs['pipeline'], runs['decode_only']
  cores = pipe['cores']
  assert (pipe['images'], pipe['seconds'], pipe['images_per_second']) == (120, 30.0, 4.0)
  assert (floor['images'], floor['seconds'], floor['images_per_second']) == (120, 15.0, 8.0)
  assert pipe['round_images_per_second'] == [4.0, 4.0, 4.0]
  split = pipeline_rate.against_floor(pipe, floor, accelerator_rate=80.0)
  assert split['fraction_of_decode_only'] == 0.5
  assert split['cores_per_accelerator'] == 80.0 / (4.0 / cores) == 20.0 * cores
  assert split['decode_only']['cores_per_accelerator'] == 10.0 * cores
  assert pipeline_rate.against_floor(pipe, floor, None)['cores_per_accelerator'] is None


def test_pipeline_report_prints_the_fraction_and_the_cores():
  split = {'images_per_second': 300.0, 'images_per_second_per_core': 150.0, 'images': 600,
           'seconds': 2.0, 'fraction_of_decode_only': 0.75, 'cores_per_accelerator': 51.52,
           'decode_only': {'images_per_second': 400.0, 'cores_per_accelerator': 38.64}}
  text = pipeline_rate.format_report({
      'dataset': 'folder:/x', 'image_size': 224, 'cores': 2, 'cpu': 'AMD EPYC', 'rounds': 3,
      'batches': 8, 'accelerator_images_per_second': 7728.0, 'train': split, 'eval': split})
  assert 'decode only    400.0 img/s: pipeline at 75 % of it' in text
  assert 'at 7728 img/s: 51.5 host cores (38.6 at the decode-only rate)' in text
