"""Discrete diffusion for text as pure functions; no Flax.

- D3PM (Austin et al. 2021): absorbing and uniform transitions (:func:`d3pm_process`), the
  forward marginals and posteriors, :math:`L_{vb}` / hybrid :math:`L_\\lambda`, ancestral
  sampling.
- Continuous-time masked diffusion (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024):
  :func:`masked_process`, the weighted cross-entropy ELBO, parallel unmasking.
- Samplers for masked models (:mod:`jaxdiff.discrete.unmasking`): MDLM / MD4's ancestral
  one with MDLM's cache, ReMDM remasking, LLaDA's confidence-ordered unmasking, all with
  semi-autoregressive blocks, temperature and nucleus sampling.
- SEDD (Lou et al. 2024): score entropy on the absorbing and uniform graphs, Tweedie
  tau-leaping.
- Block diffusion (BD3-LM, Arriola et al. 2025): :func:`block_process`, the block bound with
  one time per block over a two-stream denoiser, block-by-block sampling with a KV cache.
- Classifier-free guidance on the x0 logits (:mod:`jaxdiff.discrete.guidance`) for every
  sampler of a label-conditioned denoiser.
- Likelihoods in nats and perplexity bounds (bits per token: :func:`jaxdiff.bits_per_unit`);
  text inpainting with a character tokenizer.
- Categorical distributions shared with the autoregressive baseline: inverse-CDF draws
  (:func:`categorical`), log-probabilities with ``[MASK]`` / BOS excluded
  (:func:`log_softmax_excluding`).

Every loss, sampler and likelihood talks to ``denoise_fn(x_t, t, cond=None) -> logits``: token
ids ``int32 [B, L]`` in, x0 logits ``float32 [B, L, V]`` out, with ``t`` an ``int32 [B]``
D3PM index in ``[0, T)`` (the state after ``t + 1`` steps) or a ``float32 [B]`` masked-diffusion
time in ``(0, 1]``.
"""

from jaxdiff.discrete.block import (
    BlockProcess,
    TwoStream,
    block_diffusion_loss,
    block_elbo,
    block_elbo_terms,
    block_process,
    block_q_sample,
    block_sample,
    block_times,
    uncached_block_decoder,
)
from jaxdiff.discrete.distributions import (
    categorical,
    log_softmax_excluding,
    nucleus,
    x0_log_probs,
)
from jaxdiff.discrete.guidance import guided_decoder, guided_denoiser, guided_log_probs
from jaxdiff.discrete.likelihood import d3pm_elbo, masked_elbo, perplexity_bound
from jaxdiff.discrete.losses import (
    d3pm_cross_entropy,
    d3pm_loss,
    d3pm_prior_kl,
    d3pm_vb_terms,
    masked_diffusion_loss,
    masked_elbo_terms,
    sample_times,
)
from jaxdiff.discrete.masking import (
    MASKING_SCHEDULES,
    MaskedProcess,
    mask_probability,
    masked_process,
    masked_q_sample,
    masking_weight,
)
from jaxdiff.discrete.samplers import d3pm_sample, d3pm_step_counts
from jaxdiff.discrete.sedd import (
    GRAPHS,
    SEDDProcess,
    log_score,
    score_entropy_terms,
    sedd_elbo,
    sedd_loss,
    sedd_prior_kl,
    sedd_process,
    sedd_q_sample,
    sedd_sample,
    tau_leaping_log_probs,
)
from jaxdiff.discrete.text import CharTokenizer, expand_template, inpaint_text
from jaxdiff.discrete.transitions import (
    SCHEDULES,
    TRANSITIONS,
    D3PMProcess,
    d3pm_process,
    p_posterior_logits,
    q_posterior_logits,
    q_probs,
    q_sample,
    reverse_log_probs,
)
from jaxdiff.discrete.unmasking import (
    ORDERS,
    REMASKING_SCHEDULES,
    confidence_sample,
    masked_sample,
    remasking_sigmas,
    remdm_sample,
)

__all__ = [
    "GRAPHS", "MASKING_SCHEDULES", "ORDERS", "REMASKING_SCHEDULES", "SCHEDULES", "TRANSITIONS",
    "BlockProcess", "CharTokenizer", "D3PMProcess", "MaskedProcess", "SEDDProcess", "TwoStream",
    "block_diffusion_loss", "block_elbo", "block_elbo_terms", "block_process", "block_q_sample",
    "block_sample", "block_times", "categorical", "confidence_sample", "d3pm_cross_entropy",
    "d3pm_elbo", "d3pm_loss", "d3pm_prior_kl", "d3pm_process", "d3pm_sample", "d3pm_step_counts",
    "d3pm_vb_terms", "expand_template", "guided_decoder", "guided_denoiser", "guided_log_probs",
    "inpaint_text", "log_score", "log_softmax_excluding",
    "mask_probability", "masked_diffusion_loss", "masked_elbo", "masked_elbo_terms",
    "masked_process", "masked_q_sample", "masked_sample", "masking_weight", "nucleus",
    "p_posterior_logits", "perplexity_bound", "q_posterior_logits", "q_probs", "q_sample",
    "remasking_sigmas", "remdm_sample", "reverse_log_probs", "sample_times", "score_entropy_terms",
    "sedd_elbo", "sedd_loss", "sedd_prior_kl", "sedd_process", "sedd_q_sample", "sedd_sample",
    "tau_leaping_log_probs", "uncached_block_decoder", "x0_log_probs",
]
