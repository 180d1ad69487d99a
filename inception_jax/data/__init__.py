"""Input data: TFDS datasets (ImageNet, the bundled digits, ...) and image folders via tf.data.

Modules (import them directly; this package imports nothing, so importing it builds nothing):
  input_pipeline  get_dataset_info, steps_per_epoch, create_train_iterator, create_eval_iterator,
                  num_eval_batches: the contract with the training loop (see its docstring).
  preprocessing   public TF preprocessing: inception crop, centre crop, flip, resize, normalise.
  digits          TFDS builder of scikit-learn's bundled 8x8 digits (the offline quick start).
  prepare         ``python -m inception_jax.tools.prepare --dataset NAME [--data_dir DIR]``.
"""
