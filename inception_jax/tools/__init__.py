"""The command-line tools: ``python -m inception_jax.tools.<name>``, a module or a package each.

They sit on top of the libraries (config, models, data, training, inference, convert); no library
imports a tool.
"""
