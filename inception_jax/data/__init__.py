"""Input data: TFDS datasets (ImageNet, the bundled digits, ...) and image folders via tf.data.

Modules (import them directly; this package imports nothing, so importing it builds nothing):
  input_pipeline  get_dataset_info, steps_per_epoch, create_train_iterator, create_eval_iterator,
                  num_eval_batches: the contract with the training loop (see its docstring).
  sources         the source of examples for ``config.dataset``: tfds_source (TFDS names and the
                  digits), folder_source (``folder:/path``), on source_base (sharding, shuffling).
  preprocessing   public TF preprocessing: inception crop, centre crop, flip, resize, normalise.
  crops           the 1/10/144-crop evaluation views.
  digits          TFDS builder of scikit-learn's bundled 8x8 digits (the offline quick start).
  fake_imagenet   ILSVRC-2012 tarballs in the real layout, to rehearse the ImageNet path.
  prepare         TFDS ``download_and_prepare`` for a dataset name.
"""
