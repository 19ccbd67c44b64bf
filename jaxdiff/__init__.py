"""jaxdiff: diffusion models in JAX/Flax.

The public API, by family::

    import jaxdiff as jd
    jd.gaussian   # continuous (Gaussian) diffusion: schedules, forward process, losses,
                  # samplers, likelihoods -- pure functions, no Flax
    jd.data       # embedded offline datasets (digits, MNIST-5k, Fashion-MNIST), tfds, toy 2-D
                  # data, deterministic resumable batches, global sharded batches
    jd.metrics    # FID (Inception or any features), Inception Score, BLEU, self-BLEU, distinct-n
"""

from jaxdiff import data, gaussian, metrics
from jaxdiff.typing import DenoiseFn, Prediction

__all__ = ["DenoiseFn", "Prediction", "data", "gaussian", "metrics"]
__version__ = "0.1.0"
