"""jaxdiff: diffusion models in JAX/Flax.

The public API, by family::

    import jaxdiff as jd
    jd.gaussian   # continuous (Gaussian) diffusion: schedules, forward process, losses,
                  # samplers, likelihoods -- pure functions, no Flax
    jd.discrete   # discrete diffusion for text: D3PM (absorbing, uniform), masked diffusion,
                  # samplers, inpainting, character tokenizer -- pure functions, no Flax
    jd.data       # embedded offline datasets (digits, MNIST-5k, Fashion-MNIST), tfds, toy 2-D
                  # data, deterministic resumable batches, global sharded batches
    jd.metrics    # FID (Inception or any features), Inception Score, BLEU, self-BLEU, distinct-n
"""

from jaxdiff import data, discrete, gaussian, metrics
from jaxdiff.typing import DenoiseFn, Prediction

__all__ = ["DenoiseFn", "Prediction", "data", "discrete", "gaussian", "metrics"]
__version__ = "0.1.0"
