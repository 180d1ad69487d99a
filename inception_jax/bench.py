r"""Training and evaluation speed of a model, side by side with torchvision on the same machine.

    python -m inception_jax.bench --model googlenet_tv --batch 32 --size 224 --compare torchvision
    python -m inception_jax.bench --model inception_v3 --batch 16 --size 299 --half --json v3.json

Reports, for the training step (the training system's own ``train_step``: loss main + aux_weight x
sum of aux, SGD momentum update, BatchNorm statistics) and the evaluation step:

* images/s: median over ``--steps`` timed steps after ``--warmup`` steps, with min and max;
* compilation time, and initialisation time (``models.init_variables`` + optimiser state, or the
  training system's ``create_train_state`` with ``--init train_state``);
* achieved FLOP/s from the model's multiply-adds (``summary.count_macs``): training counts
  3 x 2 x MACs per image with the aux heads, evaluation 2 x MACs without; and that as a
  percentage of the machine's peak, measured in the same run as a large matrix product on the
  same backend (float32, or bfloat16 with ``--half``);
* peak host memory (and device memory on a GPU);
* the real input pipeline (``inception_jax.data``: tf.data decoding and the training
  augmentation) in images/s, on a synthetic JPEG image folder at the benchmark size written to a
  temporary directory (``--pipeline folder``), or on the bundled digits (``--pipeline digits``);
* with ``--loop``: the whole training loop (``training.loop.train_and_evaluate``) against the bare
  step, once on the synthetic folder and once fed a constant in-memory batch (the loop's own
  overhead);
* with ``--compare torchvision``: the same model, batch, size and loss in PyTorch in the same
  process (``torch.set_num_threads`` = the CPUs JAX uses; NCHW and channels_last, the best of the
  two is the reference; bfloat16 autocast with ``--half``; CUDA when JAX runs on a GPU), and the
  ratio ours / theirs. Needs the ``bench`` extra (``pip install 'inception_jax[bench]'``).

Host options that change speed but not numbers (all opt-in, recorded in the JSON): ``--allocator
tcmalloc`` re-executes the benchmark with tcmalloc preloaded (XLA:CPU allocates its buffers
afresh on every call and glibc returns big blocks to the kernel, so every step page-faults its
whole working set back in; see benchmarks/RESULTS.md), and ``--xla-flags`` appends to
``XLA_FLAGS``. Neither is set for you anywhere else in the package. (``import inception_jax``
itself sets one XLA:CPU flag, YNNPACK convolutions off, see ``inception_jax/xla_flags.py``;
``INCEPTION_JAX_XLA_DEFAULTS=0`` runs XLA's own defaults instead. The JSON records the
``XLA_FLAGS`` the run used.)

``--json FILE`` writes every figure (keys documented in :data:`JSON_KEYS`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import types
from typing import Any, Callable, Sequence

from inception_jax import errors
from inception_jax.errors import UserError

# Top-level keys of the --json output (tests check them).
JSON_KEYS = ('model', 'batch', 'size', 'dtype', 'steps', 'warmup', 'machine', 'versions',
             'options', 'macs_per_image', 'flops_per_image', 'peak', 'init', 'train', 'eval',
             'memory', 'pipeline', 'loop', 'compare')
# --plain choices -> the fields of the backend's Lowering that take lowering.plain()'s values
# (the first one says whether that part is on; Winograd is one of FastConv's lowerings).
PLAIN_SWITCHES = {'conv': ('conv', 'winograd'), 'norm': ('norm',),
                  'pool': ('max_pool', 'sliced_eval_pool'), 'winograd': ('winograd',)}
PLAIN_CHOICES = tuple(PLAIN_SWITCHES)
# Keys of 'train' and 'eval'.
STEP_KEYS = ('compile_seconds', 'images_per_second', 'step_seconds', 'flops_per_second',
             'percent_of_peak')

# Dense bf16 tensor-core peak of GPUs we know (FLOP/s), for MFU against the data sheet.
SPEC_PEAK_BF16 = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12}

_ALLOCATORS = {
    'tcmalloc': ('libtcmalloc_minimal.so.4', 'libtcmalloc.so.4'),
    'jemalloc': ('libjemalloc.so.2',),
}
_LIB_DIRS = ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib',
             '/usr/local/lib')
_REEXEC_MARK = 'INCEPTION_JAX_BENCH_ALLOCATOR'


# ----------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  p = errors.ArgumentParser(prog='python -m inception_jax.bench',
                            description=__doc__.split('\n\n')[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--model', default='googlenet_tv', help='registry name (default googlenet_tv)')
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--size', type=int, default=224, help='square image side in pixels')
  p.add_argument('--steps', type=int, default=10, help='timed steps (median/min/max over them)')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps after compilation')
  p.add_argument('--half', action='store_true', help='bfloat16 compute (parameters float32)')
  p.add_argument('--compare', choices=('torchvision',), default=None)
  p.add_argument('--json', default=None, help='write all figures to this file')
  p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                 help='model override, e.g. --set width_multiplier=0.5 (repeatable)')
  p.add_argument('--num-classes', type=int, default=1000)
  p.add_argument('--aux-weight', type=float, default=None,
                 help="default: the training system's (schema.base_config().aux_weight)")
  p.add_argument('--plain', action='append', default=[], choices=PLAIN_CHOICES,
                 help="run a layer's plain Flax/XLA code instead of this package's lowering "
                 '(same numbers): conv = nn.Conv for FastConv, norm = nn.BatchNorm for '
                 "FastBatchNorm, pool = reduce_window and its autodiff for max_pool, "
                 "winograd = direct convolutions for FastConv's wide 3x3s (repeatable)")
  p.add_argument('--plain-conv', action='append_const', const='conv', dest='plain',
                 help='the same as --plain conv')
  p.add_argument('--init', choices=('fast', 'train_state'), default='fast',
                 help="fast: models.init_variables; train_state: the training system's "
                 'create_train_state (jit of model.init)')
  p.add_argument('--pipeline-only', action='store_true',
                 help='only the input pipeline of --config=FILE on --config.data_dir, no model '
                      '(see python -m inception_jax.bench --pipeline-only --helpfull)')
  p.add_argument('--pipeline', choices=('folder', 'digits', 'none'), default='folder')
  p.add_argument('--pipeline-batches', type=int, default=8)
  p.add_argument('--loop', action='store_true', help='also time the whole training loop')
  p.add_argument('--no-eval', action='store_true', help='skip the evaluation step')
  p.add_argument('--peak-size', type=int, default=None,
                 help='side of the square matrix product that measures the peak '
                 '(default 3072 on CPU, 8192 on GPU)')
  p.add_argument('--threads', type=int, default=None,
                 help='torch threads for --compare (default: the CPUs this process may use)')
  p.add_argument('--allocator', choices=('system', 'tcmalloc', 'jemalloc'), default='system',
                 help='re-run with this malloc preloaded (Linux; see the module docstring)')
  p.add_argument('--xla-flags', default='',
                 help="appended to XLA_FLAGS (opt-in tuning); write --xla-flags='--flag=value'")
  args = p.parse_args(argv)
  for name in ('batch', 'size', 'steps', 'num_classes', 'pipeline_batches'):
    if getattr(args, name) < 1:
      raise UserError(f'--{name.replace("_", "-")} must be >= 1 (got {getattr(args, name)})')
  if args.warmup < 0:
    raise UserError(f'--warmup must be >= 0 (got {args.warmup})')
  return args


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
  import ast  # pylint: disable=g-import-not-at-top
  out = {}
  for item in items:
    if '=' not in item:
      raise UserError(f'--set expects KEY=VALUE, got {item!r}')
    key, value = item.split('=', 1)
    try:
      out[key.strip()] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key.strip()] = value
  return out


# ----------------------------------------------------------------------------- host set-up


def find_allocator(name: str) -> str | None:
  """Path of the shared library for ``name`` ('tcmalloc' or 'jemalloc'), or None."""
  for directory in _LIB_DIRS:
    for lib in _ALLOCATORS[name]:
      path = os.path.join(directory, lib)
      if os.path.exists(path):
        return path
  return None


def _loaded_allocator() -> str:
  try:
    with open('/proc/self/maps') as f:
      maps = f.read()
  except OSError:
    return 'unknown'
  for name, libs in _ALLOCATORS.items():
    if any(lib.split('.so')[0] in maps for lib in libs):
      return name
  return 'system'


def maybe_reexec(args: argparse.Namespace, argv: Sequence[str]) -> None:
  """Re-executes this benchmark with ``--allocator`` preloaded (before JAX is imported)."""
  if args.allocator == 'system' or os.environ.get(_REEXEC_MARK) == args.allocator:
    return
  if _loaded_allocator() == args.allocator:
    return
  path = find_allocator(args.allocator)
  if path is None:
    package = {'tcmalloc': 'libtcmalloc-minimal4', 'jemalloc': 'libjemalloc2'}[args.allocator]
    raise UserError(f'--allocator {args.allocator}: no {args.allocator} library found in '
                    f'{", ".join(_LIB_DIRS)}; install it (Debian/Ubuntu: apt-get install '
                    f'{package}) or use --allocator system')
  env = dict(os.environ)
  env['LD_PRELOAD'] = ':'.join(filter(None, [path, env.get('LD_PRELOAD')]))
  env[_REEXEC_MARK] = args.allocator
  sys.stdout.flush()
  os.execve(sys.executable, [sys.executable, '-m', 'inception_jax.bench', *argv], env)


def load_average() -> list[float] | None:
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except OSError:
    return None


def cpu_count() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def cpu_model() -> str:
  """The CPU by name, family/model and vector ISA: cloud VMs often report only "AMD EPYC", and
  figures move with the floating-point path (AVX2 against AVX-512), so a figure must say which."""
  fields: dict[str, str] = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
        if not line.strip():
          break  # the first processor is enough
  except OSError:
    return platform.processor() or platform.machine()
  flags = set(fields.get('flags', '').split())
  isa = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else ''
  parts = [f'family {fields["cpu family"]} model {fields["model"]}'] if 'cpu family' in fields \
      and 'model' in fields else []
  parts += [isa] if isa else []
  name = fields.get('model name') or platform.processor() or platform.machine()
  return f'{name} ({", ".join(parts)})' if parts else name


def host_peak_rss_bytes() -> int:
  """Peak resident set of this process so far (Linux reports ru_maxrss in KiB)."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(rss if sys.platform == 'darwin' else rss * 1024)


def _versions() -> dict[str, str]:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  out = {'python': platform.python_version(), 'jax': jax.__version__,
         'jaxlib': jaxlib.__version__, 'flax': flax.__version__, 'optax': optax.__version__}
  for name in ('torch', 'torchvision', 'tensorflow'):
    module = sys.modules.get(name)
    if module is not None:
      out[name] = module.__version__
  return out


# ----------------------------------------------------------------------------- timing


class Times(list):
  """Per-call wall seconds, with the process CPU seconds (user + system) of each call."""
  cpu: list[float]


def summarize_times(seconds: Sequence[float], batch: int) -> dict[str, Any]:
  """Median/min/max of per-step seconds and the matching images/s (and CPU seconds per step,
  which other processes on the machine disturb much less than wall time)."""
  med = statistics.median(seconds)
  out = {
      'images_per_second': {'median': batch / med, 'min': batch / max(seconds),
                            'max': batch / min(seconds)},
      'step_seconds': {'median': med, 'min': min(seconds), 'max': max(seconds),
                       'all': list(seconds)},
  }
  cpu = getattr(seconds, 'cpu', None)
  if cpu:
    out['cpu_seconds_per_step'] = statistics.median(cpu)
  return out


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def time_calls(call: Callable[[], Any], steps: int, warmup: int) -> Times:
  """Per-call wall seconds of ``call`` (which must block until its result is ready)."""
  for _ in range(warmup):
    call()
  times = Times()
  times.cpu = []
  for _ in range(steps):
    c, t = _cpu_seconds(), time.perf_counter()
    call()
    times.append(time.perf_counter() - t)
    times.cpu.append(_cpu_seconds() - c)
  return times


def measure_peak(half: bool, size: int | None = None, repeats: int = 5) -> dict[str, Any]:
  """FLOP/s of a large square matrix product on JAX's default backend (best of ``repeats``)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  on_gpu = jax.default_backend() == 'gpu'
  n = size or (8192 if on_gpu else 3072)
  dtype = jnp.bfloat16 if half else jnp.float32
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
  f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  times = time_calls(lambda: jax.block_until_ready(f(a, b)), repeats, 1)
  return {'flops_per_second': 2 * n ** 3 / min(times), 'matmul_size': n,
          'dtype': jnp.dtype(dtype).name, 'backend': jax.default_backend()}


# ----------------------------------------------------------------------------- our model


def default_aux_weight() -> float:
  """The aux-loss weight train.py uses unless a config sets one: ``schema.base_config()``'s."""
  from inception_jax.training import schema  # pylint: disable=g-import-not-at-top
  return float(schema.base_config().aux_weight)


def build_model(args: argparse.Namespace):
  """The model train.py would build for ``--model``/``--set``, with ``--plain``'s lowering."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  from inception_jax.training import model_factory  # pylint: disable=g-import-not-at-top
  config = _train_config(args)
  for key, value in _parse_overrides(args.set).items():
    config.model_overrides[key] = value
  network = models.create(args.model).label  # the lowering is chosen per network
  model = model_factory.build_model(config, num_classes=args.num_classes, check_input_size=False,
                                    lowering=lowering_for(args.plain, network))
  models.check_input_size(model, args.size, f'--size {args.size}', args.model)
  return model


def _train_config(args: argparse.Namespace):
  """The training config the benchmark runs: the schema's defaults (its aux weight included,
  unless ``--aux-weight``), a constant-rate SGD and the benchmark's model, size and batch."""
  from inception_jax.training import schema  # pylint: disable=g-import-not-at-top
  c = schema.base_config()
  c.model = args.model
  c.image_size = args.size
  c.global_batch_size = args.batch
  c.eval_batch_size = args.batch
  c.optimizer = 'sgd'
  c.momentum = 0.9
  c.learning_rate = 0.01
  c.base_batch_size = args.batch
  c.lr_schedule = 'constant'
  c.weight_decay = 0.0
  if args.aux_weight is not None:
    c.aux_weight = args.aux_weight
  c.half_precision = bool(args.half)
  return c


def _random_batch(batch: int, size: int, num_classes: int, seed: int = 0,
                  half: bool = False):
  """Random images (bfloat16 with ``half``, as the input pipeline's ``image_dtype``)."""
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(seed)
  dtype = ml_dtypes.bfloat16 if half else np.float32
  return {'image': rs.standard_normal((batch, size, size, 3)).astype(dtype),
          'label': rs.randint(0, num_classes, size=(batch,)).astype(np.int32)}


def bench_ours(args: argparse.Namespace, model, aux_weight: float,
               peak_flops: float) -> dict[str, Any]:
  """Init, compile and time our train and eval steps; returns the JSON sections."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from inception_jax import summary  # pylint: disable=g-import-not-at-top
  from inception_jax.models import init_variables  # pylint: disable=g-import-not-at-top
  from inception_jax.training import optimizers  # pylint: disable=g-import-not-at-top
  from inception_jax.training import state as state_lib  # pylint: disable=g-import-not-at-top
  from inception_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top

  config = _train_config(args)
  lr_fn = optimizers.create_learning_rate_fn(config, steps_per_epoch=1000, total_steps=100_000)
  tx = optimizers.create_optimizer(config, lr_fn)

  # Initialisation (wall time to a ready state, compilation included).
  t = time.perf_counter()
  if args.init == 'fast':
    variables = init_variables(model, jax.random.PRNGKey(0), args.size)
    params = variables['params']
    state = state_lib.TrainState(
        step=jnp.zeros((), jnp.int32), params=params,
        batch_stats=variables.get('batch_stats', {}), opt_state=jax.jit(tx.init)(params),
        ema_params={}, rng=jax.random.PRNGKey(1), nonfinite_step=jnp.full((), -1, jnp.int32),
        nonfinite_what=jnp.zeros((), jnp.int32))
  else:
    state = state_lib.create_train_state(model, tx, image_size=args.size, seed=0, ema=False)
  jax.block_until_ready(state)
  init_seconds = time.perf_counter() - t

  macs_eval = summary.count_macs(model, args.size, include_aux=False)
  macs_train = (summary.count_macs(model, args.size, include_aux=True)
                if getattr(model, 'aux_logits', False) else macs_eval)
  flops = {'train': 6 * macs_train, 'eval': 2 * macs_eval}

  host = _random_batch(args.batch, args.size, args.num_classes, half=args.half)
  batch = jax.device_put(host)
  rng = jnp.array(state.rng, copy=True)  # its own buffer: the state (and its rng) is donated
  result: dict[str, Any] = {
      'init': {'seconds': init_seconds, 'method': args.init},
      'macs_per_image': {'inference': macs_eval, 'training_with_aux': macs_train},
      'flops_per_image': flops,
  }

  # Training step: the training system's own step, state donated as the loop does.
  train_step = step_lib.make_train_step(model, tx, lr_fn, aux_weight=aux_weight, axis_name=None)
  t = time.perf_counter()
  compiled = jax.jit(train_step, donate_argnums=(0,)).lower(state, batch, rng).compile()
  train_compile = time.perf_counter() - t
  holder = {'state': state}

  def one_train_step():
    holder['state'], metrics = compiled(holder['state'], batch, rng)
    jax.block_until_ready((holder['state'], metrics))
    return metrics

  times = time_calls(one_train_step, args.steps, args.warmup)
  loss = float(one_train_step()['loss'])
  result['train'] = _step_section(train_compile, times, args.batch, flops['train'], peak_flops)
  # The same steps dispatched back to back and waited for once: the device's throughput without
  # the per-step round trip, which is what a loop that never waits can reach (--loop's reference).
  t = time.perf_counter()
  for _ in range(args.steps):
    holder['state'], metrics = compiled(holder['state'], batch, rng)
  jax.block_until_ready((holder['state'], metrics))
  result['train']['images_per_second_pipelined'] = (
      args.steps * args.batch / (time.perf_counter() - t))
  result['train']['final_loss'] = loss
  result['train']['metrics_finite'] = math.isfinite(loss)

  if not args.no_eval:
    eval_step = step_lib.make_eval_step(model, axis_name=None)
    eval_batch = dict(batch, mask=jnp.ones((args.batch,), jnp.bool_))
    t = time.perf_counter()
    compiled_eval = jax.jit(eval_step).lower(holder['state'], eval_batch).compile()
    eval_compile = time.perf_counter() - t
    times = time_calls(lambda: jax.block_until_ready(compiled_eval(holder['state'], eval_batch)),
                       args.steps, args.warmup)
    result['eval'] = _step_section(eval_compile, times, args.batch, flops['eval'], peak_flops)
  else:
    result['eval'] = None
  result['_state'] = holder['state']
  return result


def _step_section(compile_seconds: float, times: Sequence[float], batch: int,
                  flops_per_image: float, peak_flops: float) -> dict[str, Any]:
  section = {'compile_seconds': compile_seconds, **summarize_times(times, batch)}
  achieved = flops_per_image * section['images_per_second']['median']
  section['flops_per_second'] = achieved
  section['percent_of_peak'] = 100.0 * achieved / peak_flops if peak_flops else None
  return section


def device_memory() -> dict[str, Any] | None:
  import jax  # pylint: disable=g-import-not-at-top
  stats = getattr(jax.devices()[0], 'memory_stats', lambda: None)()
  if not stats:
    return None
  return {k: stats[k] for k in ('peak_bytes_in_use', 'bytes_in_use', 'bytes_limit')
          if k in stats}


# ----------------------------------------------------------------------------- input pipeline


def write_jpeg_folder(root: str, size: int, per_class: int, num_classes: int = 4,
                      seed: int = 0) -> str:
  """A synthetic ``folder:`` dataset of JPEG photos-like images about ``size`` px: smooth random
  colour fields (compressing like photos, unlike white noise), 4:3 landscape, 1.15x the side."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(seed)
  h = max(8, int(round(size * 1.15)))
  w = max(8, int(round(h * 4 / 3)))
  for split, count in (('train', per_class), ('validation', max(1, per_class // 4))):
    for c in range(num_classes):
      directory = os.path.join(root, split, f'class_{c}')
      os.makedirs(directory, exist_ok=True)
      for i in range(count):
        coarse = rs.uniform(0, 255, (max(2, h // 16), max(2, w // 16), 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
        noise = rs.randint(-12, 13, (h, w, 3))
        pixels = np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(directory, f'{i:05d}.jpg'), quality=90)
  return root


def _pipeline_config(args: argparse.Namespace, dataset: str, data_dir: str):
  config = _train_config(args)
  config.dataset = dataset
  config.data_dir = data_dir
  config.augment = 'inception_crop' if dataset.startswith('folder:') else 'resize'
  config.random_flip = dataset.startswith('folder:')
  config.shuffle_buffer = 1024
  return config


def bench_pipeline(args: argparse.Namespace, workdir: str) -> dict[str, Any] | None:
  """Images/s of the real training input pipeline (tf.data), alone on the host."""
  if args.pipeline == 'none':
    return None
  from inception_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  if args.pipeline == 'folder':
    per_class = max(8, -(-2 * args.batch // 4))
    t = time.perf_counter()
    root = write_jpeg_folder(os.path.join(workdir, 'images'), args.size, per_class)
    write_seconds = time.perf_counter() - t
    dataset = 'folder:' + root
  else:
    write_seconds = 0.0
    dataset = 'digits'
  config = _pipeline_config(args, dataset, os.path.join(workdir, 'data'))
  t = time.perf_counter()
  iterator = input_pipeline.create_train_iterator(config, process_index=0, process_count=1)
  first = next(iterator)
  setup = time.perf_counter() - t
  for _ in range(2):  # let tf.data's autotuning and prefetch settle
    next(iterator)
  t = time.perf_counter()
  for _ in range(args.pipeline_batches):
    next(iterator)
  seconds = time.perf_counter() - t
  return {'dataset': args.pipeline, 'images_per_second': args.pipeline_batches * args.batch /
          seconds, 'batches': args.pipeline_batches, 'batch_shape': list(first['image'].shape),
          'setup_seconds': setup, 'write_seconds': write_seconds,
          'note': 'tf.data alone (decode + inception crop + flip + normalise), all host CPUs',
          '_dataset': dataset, '_data_dir': os.path.join(workdir, 'data')}


# ----------------------------------------------------------------------------- training loop


class InMemoryPipeline:
  """The training loop's input source (``LoopOptions(pipeline=...)``) serving one host
  batch held in memory, without TensorFlow: what is left is the loop's own overhead (host to
  device copies of every batch included)."""

  def __init__(self, batch: dict[str, Any], num_classes: int, num_train_examples: int):
    self.batch, self.num_classes, self.num_train_examples = batch, num_classes, num_train_examples

  def get_dataset_info(self, config):
    return types.SimpleNamespace(
        name=config.dataset, num_classes=self.num_classes,
        num_train_examples=self.num_train_examples, num_eval_examples=len(self.batch['label']),
        class_names=[str(i) for i in range(self.num_classes)], image_channels=3,
        train_split='train', eval_split='validation', num_skipped_files=0)

  def create_train_iterator(self, config, *, start_step=0, process_index=None,
                            process_count=None):
    return itertools.repeat(self.batch)

  def create_eval_iterator(self, config, *, process_index=None, process_count=None):
    import numpy as np  # pylint: disable=g-import-not-at-top
    return iter([dict(self.batch, mask=np.ones(len(self.batch['label']), np.bool_))])


def bench_loop(args: argparse.Namespace, workdir: str, pipeline: dict[str, Any] | None,
               bare_images_per_second: float) -> dict[str, Any]:
  """The training loop (train.py's train_and_evaluate) vs the bare step, in images/s.

  ``bare_images_per_second`` is the faster of the bare step's two figures: one step at a time
  (median) and dispatched back to back (``images_per_second_pipelined``: like the loop, it does not
  wait for each step; on a GPU it is the faster).

  ``constant_batch`` feeds one in-memory batch (the loop's own overhead: dispatch, host to
  device copies, metrics); ``folder`` (unless ``--pipeline none``) also runs the tf.data
  pipeline on a synthetic JPEG folder, competing for the same host CPUs.
  """
  from inception_jax.training import loop  # pylint: disable=g-import-not-at-top
  # Two log windows of --steps steps: the loop's timer excludes the first (compiling) step, the
  # rest of the first window warms up, and the second is timed, as the bare step's steps are.
  steps = 2 * args.steps
  variants = ['constant_batch']
  if args.pipeline != 'none':
    variants.insert(0, 'folder')
  out = {}
  for variant in variants:
    source = None
    if variant == 'folder':
      if pipeline is None or pipeline['dataset'] != 'folder':
        root = write_jpeg_folder(os.path.join(workdir, 'loop_images'), args.size,
                                 max(8, -(-2 * args.batch // 4)))
        dataset, data_dir = 'folder:' + root, os.path.join(workdir, 'data')
      else:
        dataset, data_dir = pipeline['_dataset'], pipeline['_data_dir']
    else:
      dataset, data_dir = 'in_memory', os.path.join(workdir, 'data')
      source = InMemoryPipeline(_random_batch(args.batch, args.size, args.num_classes,
                                              half=args.half),
                                args.num_classes, num_train_examples=steps * args.batch)
    config = _pipeline_config(args, dataset, data_dir)
    config.num_train_steps = steps
    config.log_every_steps = args.steps
    config.checkpoint_every_steps = 0
    config.eval_every_steps = 0
    config.tensorboard = False
    config.num_devices = 1
    config.model_overrides.num_classes = args.num_classes
    for key, value in _parse_overrides(args.set).items():
      config.model_overrides[key] = value
    run_dir = os.path.join(workdir, f'loop_{variant}')
    t = time.perf_counter()
    # --plain reaches the loop through the model (the config names no lowering).
    options = loop.LoopOptions(show_progress=False, pipeline=source,
                               model=build_model(args) if args.plain else None)
    loop.train_and_evaluate(config, run_dir, options)
    wall = time.perf_counter() - t
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
      train_lines = [json.loads(line) for line in f if '"train"' in line]
    # A window of only the compiling step (--steps 1) has no speed: metrics.jsonl leaves it out.
    ips = float(train_lines[-1].get('images_per_sec', 'nan')) if train_lines else float('nan')
    out[variant] = {'images_per_second': ips, 'wall_seconds': wall,
                    'overhead_vs_bare_step_percent':
                        100.0 * (1.0 - ips / bare_images_per_second)}
  out['bare_images_per_second'] = bare_images_per_second
  out['note'] = ('loop: train_and_evaluate with pmap on 1 device, metrics fetched at the log '
                 'boundary, state donated, batches put on the device 2 ahead by a background '
                 'thread (bfloat16 images with --half); "folder" includes the '
                 'tf.data pipeline competing for the same CPUs, "constant_batch" feeds one '
                 'in-memory batch (the loop\'s own overhead)')
  return out


# ----------------------------------------------------------------------------- torchvision


def import_torch():
  """torch and torchvision, or a UserError saying how to install them.

  Importing torchvision after TensorFlow (our input pipeline) crashes in triton's native library
  (both bundle LLVM); the benchmark runs torch eagerly and needs no triton, so when TensorFlow is
  already loaded triton is hidden from torch (``torch.utils._triton`` then reports it absent).
  """
  if 'tensorflow' in sys.modules and 'torchvision' not in sys.modules:
    sys.modules.setdefault('triton', None)
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import torchvision  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("--compare torchvision needs PyTorch and torchvision: pip install "
                    "'inception_jax[bench]'") from None
  return torch, torchvision


def bench_torchvision(args: argparse.Namespace, aux_weight: float, on_gpu: bool
                      ) -> dict[str, Any]:
  """Times torchvision's model with the same batch, size and loss, NCHW and channels_last."""
  from inception_jax import models  # pylint: disable=g-import-not-at-top
  torch, torchvision = import_torch()
  # The registry names each entry's torchvision counterpart (and how they differ, if they do).
  counterparts = [n for n in models.available() if models.spec(n).torchvision_name]
  if args.model not in counterparts:
    raise UserError(f'--compare torchvision: no torchvision counterpart of {args.model!r}; use '
                    f'one of {", ".join(counterparts)}')
  overrides = _parse_overrides(args.set)
  if overrides.get('width_multiplier', 1.0) != 1.0 or set(overrides) - {'width_multiplier',
                                                                         'dropout_rate'}:
    raise UserError('--compare torchvision needs the published architecture: drop --set '
                    f'{", ".join(sorted(overrides))}')
  spec = models.spec(args.model)
  tv_name, note = spec.torchvision_name, spec.torchvision_note
  threads = args.threads or cpu_count()
  torch.set_num_threads(threads)
  device = 'cuda' if on_gpu and torch.cuda.is_available() else 'cpu'
  if device == 'cuda':
    torch.backends.cudnn.benchmark = True  # torch's fastest convolution choice (autotuned)
  torch.manual_seed(0)
  kwargs = dict(weights=None, aux_logits=True, init_weights=True, num_classes=args.num_classes)
  if tv_name == 'inception_v3':
    kwargs['transform_input'] = False
  rs_batch = _random_batch(args.batch, args.size, args.num_classes)
  images = torch.from_numpy(rs_batch['image']).permute(0, 3, 1, 2).contiguous().to(device)
  labels = torch.from_numpy(rs_batch['label']).long().to(device)

  def sync():
    if device == 'cuda':
      torch.cuda.synchronize()

  formats = {}
  for fmt, memory_format in (('nchw', torch.contiguous_format),
                             ('channels_last', torch.channels_last)):
    model = getattr(torchvision.models, tv_name)(**kwargs).to(device)
    model = model.to(memory_format=memory_format)
    x = images.contiguous(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    autocast = lambda: torch.autocast(device, dtype=torch.bfloat16, enabled=bool(args.half))

    def train_step():
      model.train()
      optimizer.zero_grad(set_to_none=True)
      with autocast():
        out = model(x)
        if tv_name == 'googlenet':
          loss = criterion(out.logits, labels) + aux_weight * (
              criterion(out.aux_logits1, labels) + criterion(out.aux_logits2, labels))
        else:
          loss = criterion(out.logits, labels) + aux_weight * criterion(out.aux_logits, labels)
      loss.backward()
      optimizer.step()
      sync()
      return float(loss.detach().float().cpu())

    def eval_step():
      model.eval()
      with torch.inference_mode(), autocast():
        out = model(x)
        torch.argmax(out, dim=-1).cpu()
      sync()

    t = time.perf_counter()
    train_step()
    first = time.perf_counter() - t
    train_times = time_calls(train_step, args.steps, max(0, args.warmup - 1))
    eval_times = (None if args.no_eval else time_calls(eval_step, args.steps, args.warmup))
    formats[fmt] = {'first_step_seconds': first,
                    'train': summarize_times(train_times, args.batch),
                    'eval': summarize_times(eval_times, args.batch) if eval_times else None}
    del model, optimizer
  best = max(formats, key=lambda f: formats[f]['train']['images_per_second']['median'])
  return {'torchvision_model': tv_name, 'note': note, 'device': device, 'threads': threads,
          'autocast_bfloat16': bool(args.half), 'formats': formats, 'best_format': best}


# ----------------------------------------------------------------------------- report


def _fmt_rate(section: dict[str, Any] | None) -> str:
  if not section:
    return '-'
  r = section['images_per_second']
  return f'{r["median"]:8.2f} img/s (min {r["min"]:.2f}, max {r["max"]:.2f})'


def print_report(report: dict[str, Any]) -> None:
  g = 1e9
  print(f'{report["model"]}: batch {report["batch"]}, {report["size"]} px, {report["dtype"]}, '
        f'{report["steps"]} timed steps after {report["warmup"]} warm-up '
        f'({report["machine"]["backend"]}, {report["machine"]["device"]}, '
        f'{report["machine"]["cpu_count"]} CPUs, load {report["machine"]["load_average_start"]})')
  if report['options']['plain']:
    print('  plain layers: ' + ', '.join(report['options'][k] for k in report['options']['plain']))
  peak = report['peak']
  print(f'  peak ({peak["dtype"]} {peak["matmul_size"]}^3 matmul): '
        f'{peak["flops_per_second"] / g:.1f} GFLOP/s')
  print(f'  init: {report["init"]["seconds"]:.2f} s ({report["init"]["method"]})')
  for name in ('train', 'eval'):
    s = report[name]
    if not s:
      continue
    pct = f'{s["percent_of_peak"]:.1f}% of peak' if s['percent_of_peak'] is not None else ''
    print(f'  {name:5s}: {_fmt_rate(s)}  compile {s["compile_seconds"]:.1f} s  '
          f'{s["flops_per_second"] / g:.1f} GFLOP/s  {pct}  '
          f'CPU {s.get("cpu_seconds_per_step", float("nan")):.2f} s/step')
    if 'images_per_second_pipelined' in s:
      print(f'         back to back (one wait for {report["steps"]} steps): '
            f'{s["images_per_second_pipelined"]:.2f} img/s')
  mem = report['memory']
  line = f'  host peak RSS {mem["host_peak_bytes"] / 2**30:.2f} GiB'
  if mem.get('device'):
    line += f', device peak {mem["device"].get("peak_bytes_in_use", 0) / 2**30:.2f} GiB'
  print(line)
  if report['pipeline']:
    p = report['pipeline']
    print(f'  input pipeline ({p["dataset"]}): {p["images_per_second"]:.1f} img/s')
  if report['loop']:
    for k in ('folder', 'constant_batch'):
      if k not in report['loop']:
        continue
      v = report['loop'][k]
      print(f'  loop ({k}): {v["images_per_second"]:.2f} img/s '
            f'({v["overhead_vs_bare_step_percent"]:+.1f}% vs the faster bare step figure, '
            f'{report["loop"]["bare_images_per_second"]:.2f} img/s)')
  if report['compare']:
    c = report['compare']
    for fmt, v in c['formats'].items():
      print(f'  torchvision {fmt:13s} train {_fmt_rate(v["train"])}  eval {_fmt_rate(v["eval"])}'
            f'  CPU {v["train"].get("cpu_seconds_per_step", float("nan")):.2f} s/step')
    print(f'  ours / torchvision ({c["best_format"]}): train {c["ratio_train"]:.2f}x'
          + (f', eval {c["ratio_eval"]:.2f}x' if c.get('ratio_eval') else ''))
    if c.get('note'):
      print(f'  note: {c["note"]}')


def lowering_for(plain: Sequence[str], network: str):
  """This backend's ``lowering.Lowering`` for ``network`` (a model's ``label``) with the parts
  named in ``plain`` (``--plain``) made plain; a new value, so nothing else in the process
  changes."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  base = lowering.plain()
  fields = {f: getattr(base, f) for name in plain for f in PLAIN_SWITCHES[name]}
  return dataclasses.replace(lowering.for_backend(network=network), **fields)


def _lowerings(value) -> dict[str, str]:
  """Which code each layer runs under the Lowering ``value``, for the report."""
  from inception_jax import lowering  # pylint: disable=g-import-not-at-top
  base = lowering.plain()

  def name(cls) -> str:
    package = getattr(cls, '__module__', '').startswith('inception_jax.lowering')
    return ('lowering.' if package else '') + getattr(cls, '__qualname__', repr(cls))

  pool = 'lowering.max_pool gather-form gradient'
  if value.sliced_eval_pool:
    pool += ', sliced eval forward'
  names = {'conv': (name(value.conv), 'nn.Conv'), 'norm': (name(value.norm), 'nn.BatchNorm'),
           'pool': (pool, 'autodiff of reduce_window'),
           'winograd': ('lowering.winograd_conv3x3 for wide 3x3s', 'no Winograd')}
  on = {k: getattr(value, PLAIN_SWITCHES[k][0]) != getattr(base, PLAIN_SWITCHES[k][0])
        for k in PLAIN_CHOICES}
  return {k: names[k][not on[k]] for k in PLAIN_CHOICES}


def _strip_private(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {k: _strip_private(v) for k, v in tree.items() if not str(k).startswith('_')}
  if isinstance(tree, list):
    return [_strip_private(v) for v in tree]
  return tree


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Runs the benchmark described by ``args``; returns the report (what --json writes)."""
  if args.xla_flags:
    os.environ['XLA_FLAGS'] = ' '.join(filter(None, [os.environ.get('XLA_FLAGS'),
                                                     args.xla_flags]))
  if args.compare:
    import_torch()  # fail early, before minutes of compilation
  load_start = load_average()
  import jax  # pylint: disable=g-import-not-at-top

  model = build_model(args)
  aux_weight = args.aux_weight if args.aux_weight is not None else default_aux_weight()
  on_gpu = jax.default_backend() == 'gpu'
  peak = measure_peak(args.half, args.peak_size)
  spec_peak = None
  if on_gpu and args.half:
    kind = jax.devices()[0].device_kind
    spec_peak = next((v for k, v in SPEC_PEAK_BF16.items() if k in kind), None)
  peak['spec_flops_per_second'] = spec_peak

  ours = bench_ours(args, model, aux_weight, peak['flops_per_second'])
  if spec_peak:
    for name in ('train', 'eval'):
      if ours[name]:
        ours[name]['percent_of_spec_peak'] = 100.0 * ours[name]['flops_per_second'] / spec_peak
  memory = {'host_peak_bytes': host_peak_rss_bytes(), 'device': device_memory()}
  del ours['_state']

  with tempfile.TemporaryDirectory(prefix='inception_jax_bench_') as workdir:
    pipeline = bench_pipeline(args, workdir)
    # The faster of the two bare figures, so that the loop's overhead is never understated (on
    # the CPU, steps dispatched back to back can run slower than one at a time).
    bare = max(ours['train']['images_per_second']['median'],
               ours['train']['images_per_second_pipelined'])
    loop_result = (bench_loop(args, workdir, pipeline, bare)
                   if args.loop else None)

  compare = None
  if args.compare:
    compare = bench_torchvision(args, aux_weight, on_gpu)
    best = compare['formats'][compare['best_format']]
    compare['ratio_train'] = (ours['train']['images_per_second']['median'] /
                              best['train']['images_per_second']['median'])
    if ours['eval'] and best['eval']:
      best_eval = max(v['eval']['images_per_second']['median']
                      for v in compare['formats'].values())
      compare['ratio_eval'] = ours['eval']['images_per_second']['median'] / best_eval

  device = jax.devices()[0]
  report = {
      'model': args.model, 'batch': args.batch, 'size': args.size,
      'dtype': 'bfloat16' if args.half else 'float32', 'steps': args.steps,
      'warmup': args.warmup,
      'machine': {'backend': jax.default_backend(), 'device': device.device_kind,
                  'cpu': cpu_model(), 'cpu_count': cpu_count(), 'platform': platform.platform(),
                  'load_average_start': load_start, 'load_average_end': load_average(),
                  'date': time.strftime('%Y-%m-%d %H:%M:%S %Z')},
      'versions': _versions(),
      'options': {'allocator': _loaded_allocator(), 'xla_flags': os.environ.get('XLA_FLAGS', ''),
                  **_lowerings(model.lowering), 'plain': sorted(set(args.plain)),
                  'aux_weight': aux_weight, 'overrides': _parse_overrides(args.set),
                  'num_classes': args.num_classes},
      'macs_per_image': ours['macs_per_image'], 'flops_per_image': ours['flops_per_image'],
      'peak': peak, 'init': ours['init'], 'train': ours['train'], 'eval': ours['eval'],
      'memory': memory, 'pipeline': pipeline, 'loop': loop_result, 'compare': compare,
  }
  return _strip_private(report)


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if '--pipeline-only' in argv:  # the input pipeline alone, on a prepared dataset
    from inception_jax import pipeline_rate  # pylint: disable=g-import-not-at-top
    return pipeline_rate.main([a for a in argv if a != '--pipeline-only'])
  args = parse_args(argv)
  maybe_reexec(args, argv)
  report = run(args)
  print_report(report)
  if args.json:
    directory = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(directory, exist_ok=True)
    tmp = args.json + '.tmp'
    with open(tmp, 'w') as f:
      json.dump(report, f, indent=2, sort_keys=True, default=str)
    shutil.move(tmp, args.json)
    print(f'wrote {args.json}')
  return 0


if __name__ == '__main__':
  errors.run_cli(main)
