"""The training system (see ARCHITECTURE.md). One job per module:

* ``schema``: the config fields, their defaults and validation.
* ``state``: ``TrainState`` (params, batch_stats, opt_state, ema_params, step, rng, NaN guard).
* ``losses``, ``optimizers``: cross-entropy with label smoothing and the aux loss; Optax
  optimisers and learning-rate schedules.
* ``step``: the pure ``train_step`` / ``eval_step`` over a named batch axis.
* ``parallel``: ``DataParallel`` (pmap or jit + shard_map), host<->device, multi-host set-up.
* ``checkpoint``: Orbax checkpoints with metadata and checksums.
* ``metrics``: metrics.jsonl and TensorBoard writers.
* ``model_factory``: ``build_model``, the network a config (or a checkpoint's metadata) names.
* ``programs``: the model's optimiser and compiled steps, and a cache to reuse them in-process.
* ``run_setup``: ``prepare_run`` (checks, plan, programs, resume or init) and ``LoopOptions``.
* ``console``: what a run prints (process 0's lines, the progress bar).
* ``loop``: ``train_and_evaluate`` (what train.py runs): the steps, their throughput, the cadence.

Kept import-free so configs can import ``schema`` without loading JAX.
"""
