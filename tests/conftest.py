"""Suite-wide test setup.

Eight virtual CPU devices let the data-parallel code (pmap / shard_map) be tested on one host;
this must run before any JAX backend is initialised, hence at conftest import.
"""

import jax

jax.config.update('jax_num_cpu_devices', 8)
