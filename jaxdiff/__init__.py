"""jaxdiff: diffusion models in JAX/Flax.

The public API, by family::

    import jaxdiff as jd
    jd.gaussian   # continuous (Gaussian) diffusion: schedules, forward process, losses,
                  # samplers, likelihoods -- pure functions, no Flax
    jd.discrete   # discrete diffusion for text: D3PM (absorbing, uniform), masked diffusion,
                  # samplers, inpainting, character tokenizer -- pure functions, no Flax
    jd.models     # Flax NNX UNet (DDPM/ADM), DiT, text transformers; presets; pure denoise_fn
    jd.train      # jitted data-parallel train step, orbax checkpoints, EMA, the training loop
    jd.autoregressive  # the AR baseline: exact NLL, KV-cache sampling, left-context infilling
    jd.data       # embedded offline datasets (digits, MNIST-5k, Fashion-MNIST), tfds, toy 2-D
                  # data, deterministic resumable batches, global sharded batches
    jd.metrics    # FID (Inception or any features), Inception Score, BLEU, self-BLEU, distinct-n
"""

from jaxdiff import autoregressive, data, discrete, gaussian, metrics, models, train
from jaxdiff.typing import DenoiseFn, Prediction

__all__ = [
    "DenoiseFn", "Prediction", "autoregressive", "data", "discrete", "gaussian", "metrics",
    "models", "train",
]
__version__ = "0.1.0"
