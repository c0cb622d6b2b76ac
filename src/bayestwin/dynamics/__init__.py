"""Pure JAX kernels: dosing events as padded arrays, closed-form and ODE structural models.

Nothing here imports pandas or xarray; functions take and return arrays so that
``jit``, ``vmap`` and ``grad`` apply cleanly.

Importing this package switches JAX to float64 (``jax_enable_x64``): ODE
solves with tolerances of 1e-8, sums of hundreds of log-likelihood terms and
the stable closed forms near ``ka = ke`` all need double precision. Arrays
created before the import keep their dtype.
"""

import jax

jax.config.update("jax_enable_x64", True)
