r"""Training and evaluation speed of a model, side by side with torchvision on the same machine.

    python -m inception_jax.tools.bench --model googlenet_tv --batch 32 --size 224 --compare torchvision
    python -m inception_jax.tools.bench --model inception_v3 --batch 16 --size 299 --half --json v3.json

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

``--json FILE`` writes every figure (keys documented in :data:`report.JSON_KEYS`).
"""

# One module per part: cli (the command), arguments (its flags), allocator (--allocator), machine
# (host facts), timing (clocks and the matmul peak), lowerings (--plain), workload (the model,
# config and batch under test), steps (our train and eval steps), pipeline (tf.data), loop
# (--loop), torchvision_compare (--compare), report (printing and JSON) and pipeline_rate
# (--pipeline-only). Nothing is re-exported here: `python -m` imports this file first, and each
# caller imports the part it uses.
