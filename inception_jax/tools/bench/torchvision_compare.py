"""``--compare torchvision``: the same model, batch, size and loss in PyTorch, in the same process.

A speed is only good or bad against a reference on the same machine; torchvision's GoogLeNet and
Inception v3 are the published architectures ours reproduce, so theirs is that reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from inception_jax.errors import UserError
from inception_jax.tools.bench.arguments import parse_overrides
from inception_jax.tools.bench.machine import cpu_count
from inception_jax.tools.bench.timing import summarize_times, time_calls
from inception_jax.tools.bench.workload import random_batch


def import_torch() -> tuple[Any, Any]:
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
  overrides = parse_overrides(args.set)
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
  rs_batch = random_batch(args.batch, args.size, args.num_classes)
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
