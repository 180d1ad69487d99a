"""The reliability tests' training config: TinyNet (registered by tests/fault_helpers.py) on the
bundled digits, 12 px, 12 steps of 16, a checkpoint every 2 steps and an evaluation of 64
validation images (4 batches) every 4, so every kind of moment a kill can hit comes up within seconds."""

from _training_helpers import tiny_config


def get_config(arg: str | None = None):
  del arg
  return tiny_config(num_train_steps=12, checkpoint_every_steps=2, eval_every_steps=4,
                     log_every_steps=2, keep_checkpoints=3, eval_split='validation[:64]',
                     eval_batch_size=16)
