"""The command-line tools, one module each: ``python -m inception_jax.tools.<name>``.

They sit on top of the libraries (config, models, data, training, inference, convert); no library
imports a tool.
"""
