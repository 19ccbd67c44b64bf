"""jaxdiff: diffusion models in JAX/Flax.

The public API, by family::

    import jaxdiff as jd
    jd.gaussian   # continuous (Gaussian) diffusion: schedules, forward process, losses,
                  # samplers, likelihoods -- pure functions, no Flax
    jd.discrete   # discrete diffusion for text: D3PM (absorbing, uniform), masked diffusion,
                  # samplers, inpainting, character tokenizer -- pure functions, no Flax
    jd.models     # Flax NNX UNet (DDPM/ADM), DiT, text transformers; presets; the pure
                  # apply_fn(params, x_t, t, cond, key) and bind() to a denoise_fn
    jd.tasks      # one value per training process (gaussian, absorbing, uniform, masked,
                  # autoregressive): everything the loop, sampling and evaluation need
    jd.train      # jitted data-parallel train step, orbax checkpoints, EMA, the training loop
    jd.autoregressive  # the AR baseline: exact NLL, KV-cache sampling, left-context infilling
    jd.data       # embedded offline datasets (digits, MNIST-5k, Fashion-MNIST), tfds, toy 2-D
                  # data, deterministic resumable batches, global sharded batches
    jd.pretrained # diffusers-format checkpoints in and out (UNet2DModel, ...), pretrained
                  # pipelines sampled with jaxdiff's samplers
    jd.metrics    # FID (Inception or any features), Inception Score, BLEU, self-BLEU, distinct-n
    jd.evaluation # the report of a trained run (experiments/evaluate.py), in-domain classifier
    jd.chars      # the character codec (text8 alphabet a-z and space <-> ids 0-26)
    jd.bits_per_unit  # nats per example -> bits per token / character / dimension
"""

from jaxdiff import (
    autoregressive,
    chars,
    data,
    discrete,
    evaluation,
    gaussian,
    metrics,
    models,
    pretrained,
    tasks,
    train,
)
from jaxdiff.typing import DenoiseFn, Prediction
from jaxdiff.units import bits_per_unit

__all__ = [
    "DenoiseFn", "Prediction", "autoregressive", "bits_per_unit", "chars", "data", "discrete",
    "evaluation", "gaussian", "metrics", "models", "pretrained", "tasks", "train",
]
__version__ = "0.1.0"
