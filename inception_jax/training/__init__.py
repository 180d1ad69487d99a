"""The training system (see ARCHITECTURE.md). One job per module:

* ``schema``: the config fields, their defaults and validation.
* ``state``: ``TrainState`` (params, batch_stats, opt_state, ema_params, step, rng, NaN guard).
* ``losses``, ``optimizers``: cross-entropy with label smoothing and the aux loss; Optax
  optimisers and learning-rate schedules.
* ``step``: the pure ``train_step`` / ``eval_step`` over a named batch axis.
* ``parallel``: ``DataParallel`` (pmap or jit + shard_map), host<->device, multi-host set-up.
* ``checkpoint``: Orbax checkpoints with metadata and checksums.
* ``metrics``: metrics.jsonl and TensorBoard writers.
* ``loop``: ``train_and_evaluate`` (what train.py runs).

Kept import-free so configs can import ``schema`` without loading JAX.
"""
