"""Which source ``config.dataset`` names: an image folder (``folder:/path``) or TFDS."""

from __future__ import annotations

import os
from typing import Any

from inception_jax.data.folder_source import FOLDER_PREFIX, FolderSource
from inception_jax.data.source_base import Source
from inception_jax.data.tfds_source import TfdsSource


def config_seed(config: Any) -> int:
  """``config.seed`` as the non-negative int64 that TF's stateless ops take."""
  return int(config.seed) % (2**63)


def open_source(config: Any) -> Source:
  """The source of ``config.dataset`` with its split sizes read (builds digits on first use)."""
  name = config.dataset.strip()
  data_dir = os.path.expanduser(config.data_dir) if config.data_dir else None
  train_split, eval_split = config.train_split, config.eval_split
  if name.startswith(FOLDER_PREFIX):
    return FolderSource(name, data_dir, train_split, eval_split, config_seed(config))
  return TfdsSource(name, data_dir, train_split, eval_split)
