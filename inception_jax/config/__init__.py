"""What a run is: the config schema and its checks, config files and their loading, recipes.

The layer every other part reads its settings from. It imports no JAX at import time; building a
config (``schema.base_config()``) loads the model registry, for the fields a model can override.
"""
