"""jaxdiff: diffusion models in JAX/Flax.

The public API, by family::

    import jaxdiff as jd
    jd.gaussian   # continuous (Gaussian) diffusion: schedules, forward process, losses,
                  # samplers, likelihoods -- pure functions, no Flax
"""

from jaxdiff import gaussian
from jaxdiff.typing import DenoiseFn, Prediction

__all__ = ["DenoiseFn", "Prediction", "gaussian"]
__version__ = "0.1.0"
