"""The ImageNet path rehearsed on ILSVRC-format tarballs, through TFDS's real imagenet2012 builder.

README's ImageNet steps, at a small size: fake tarballs in ``<data_dir>/downloads/manual``,
``prepare`` (the real builder, its CMYK/PNG fix-ups and its bundled validation labels), then both
ImageNet configs at full resolution (only the batch and the length overridden): a preemption after
step 1 saves a checkpoint, the rerun resumes from it, trains step 2 and evaluates every
validation image.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import tarfile

import numpy as np
import pytest

from inception_jax.data import fake_imagenet
from inception_jax.tools import fake_imagenet as fake_imagenet_cli
from inception_jax.tools import prepare as prepare_cli
from inception_jax.errors import UserError
from _training_helpers import loop_options

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAL_IMAGES = 6
TRAIN_PER_CLASS = 2

pytestmark = pytest.mark.slow  # builds a TFDS dataset and compiles both networks at full size


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory) -> str:
  root = str(tmp_path_factory.mktemp('imagenet'))
  manual = os.path.join(root, 'downloads', 'manual')
  fake_imagenet_cli.main(['--manual_dir', manual, '--val', str(VAL_IMAGES),
                      '--train_per_class', str(TRAIN_PER_CLASS), '--classes', '8'])
  prepare_cli.main(['--dataset', 'imagenet2012', '--data_dir', root])
  return root


def _load_config(name: str, **overrides):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, 'configs', name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  with config.unlocked():
    config.update(overrides)
  return config


def test_tarballs_have_the_ilsvrc_layout_and_oddities(data_dir):
  manual = os.path.join(data_dir, 'downloads', 'manual')
  assert sorted(os.listdir(manual)) == [fake_imagenet.TRAIN_TAR, fake_imagenet.VAL_TAR]
  with tarfile.open(os.path.join(manual, fake_imagenet.VAL_TAR)) as tar:
    assert sorted(tar.getnames()) == [f'ILSVRC2012_val_{i:08d}.JPEG'
                                      for i in range(1, VAL_IMAGES + 1)]
  with tarfile.open(os.path.join(manual, fake_imagenet.TRAIN_TAR)) as tar:
    inner = tar.getnames()
    assert all(n.startswith('n') and n.endswith('.tar') for n in inner)
    # The builder's own special files are there under their real names and formats.
    png = tarfile.open(fileobj=tar.extractfile('n02105855.tar'))
    data = png.extractfile('n02105855_2933.JPEG').read()
    assert data.startswith(b'\x89PNG')


def test_the_real_builder_prepared_every_image_as_rgb(data_dir):
  import tensorflow_datasets as tfds
  builder = tfds.builder('imagenet2012', data_dir=data_dir)
  assert builder.info.splits['validation'].num_examples == VAL_IMAGES
  plan = fake_imagenet.make_plan(8, TRAIN_PER_CLASS, VAL_IMAGES)
  assert builder.info.splits['train'].num_examples == len(plan.train_synsets) * TRAIN_PER_CLASS
  names = set()
  for example in tfds.as_numpy(builder.as_dataset(split='train')):
    assert example['image'].shape[-1] == 3
    names.add(example['file_name'].decode())
  assert set(plan.cmyk_files) <= names and set(plan.png_files) <= names
  # The validation labels come from the builder's bundled list, by position.
  labels = [builder.info.features['label'].int2str(int(e['label']))
            for e in tfds.as_numpy(builder.as_dataset(split='validation'))]
  assert sorted(labels) == sorted(plan.val_labels)


@pytest.mark.parametrize('config_file, image_size', [('googlenet_imagenet.py', 224),
                                                      ('inception_v3_imagenet.py', 299)])
def test_recipe_trains_is_preempted_resumes_and_evaluates_every_image(
    data_dir, tmp_path, config_file, image_size):
  from inception_jax.training import loop
  config = _load_config(config_file, data_dir=data_dir, global_batch_size=4, eval_batch_size=4,
                        num_train_steps=2, log_every_steps=1, tensorboard=False,
                        num_devices=1)
  assert config.image_size == image_size and config.dataset == 'imagenet2012'
  workdir = str(tmp_path / 'run')

  def preempt_after_first_step(step: int) -> None:
    if step == 1:
      os.kill(os.getpid(), signal.SIGTERM)

  first = loop.train_and_evaluate(config, workdir,
                                  loop_options(hooks=[preempt_after_first_step]))
  assert first.preempted and first.step == 1
  second = loop.train_and_evaluate(config, workdir, loop_options())  # reuses the compiled step
  assert second.resumed_from == 1 and second.step == 2 and not second.preempted
  assert second.final_eval['num_examples'] == VAL_IMAGES
  assert np.isfinite(second.final_eval['loss'])


def test_refuses_a_non_empty_output_and_leaves_nothing_half_written(tmp_path, capsys):
  manual = tmp_path / 'manual'
  manual.mkdir()
  (manual / 'notes.txt').write_text('mine')
  with pytest.raises(SystemExit) as exit_info:
    fake_imagenet_cli.run_cli(lambda: fake_imagenet_cli.main(['--manual_dir', str(manual), '--val', '1']))
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: ') and 'not empty' in err[0]
  assert os.listdir(manual) == ['notes.txt']


def test_an_interrupted_write_leaves_no_tarball(tmp_path, monkeypatch):
  plan = fake_imagenet.make_plan(2, 1, 2)
  calls = []

  def encode_then_fail(*args, **kwargs):
    calls.append(1)
    if len(calls) > 3:  # the validation tar is written, the training tar is not
      raise KeyboardInterrupt
    return real_encode(*args, **kwargs)

  real_encode = fake_imagenet.encode
  monkeypatch.setattr(fake_imagenet, 'encode', encode_then_fail)
  with pytest.raises(KeyboardInterrupt):
    fake_imagenet.write(str(tmp_path / 'manual'), plan)
  assert os.listdir(tmp_path / 'manual') == []
  with pytest.raises(UserError, match='--val is at most 50000'):
    fake_imagenet.make_plan(2, 1, 50_001)
