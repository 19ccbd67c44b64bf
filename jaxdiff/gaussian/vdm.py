r"""The continuous-time variational bound of Kingma et al. 2021 (VDM) on a
:class:`~jaxdiff.gaussian.paths.Path`.

.. math::
    -\log p(x) \le \underbrace{\mathrm{KL}(q(z_{t_1}|x)\,\|\,\mathcal N(0, s^2 I))}_{\text{prior}}
    + \underbrace{\mathbb E_{z_{t_0}}[-\log p(x | z_{t_0})]}_{\text{reconstruction}}
    + \underbrace{\tfrac12 (t_1 - t_0)\,\mathbb E_{t, \epsilon}\big[-\dot\lambda(t)\,
      \|\epsilon - \hat\epsilon(z_t, t)\|^2\big]}_{\text{diffusion } L_\infty}

(VDM eq. 17 with :math:`\gamma = -\lambda`), with :math:`t_0, t_1` the path's ends, ``s``
the prior's std, by default the path's :math:`\sigma(t_1)` (VDM takes 1; on a VP path the
two differ by :math:`\alpha(t_1)^2/2`), :math:`t \sim U[t_0, t_1]` and the decoder of
VDM App. B: for data on ``num_bins`` levels :math:`x_v \in [-1, 1]`,
:math:`p(x_i | z_{0,i}) \propto \mathcal N(z_{0,i};\ \alpha_0 x_v, \sigma_0^2)` normalised over
the levels; for continuous data the density :math:`\mathcal N(x; z_0/\alpha_0,
\sigma_0^2/\alpha_0^2)`. With ``antithetic`` times the batch shares one uniform draw
:math:`u_0` and takes :math:`t_i = t_0 + (t_1 - t_0)((u_0 + i/B) \bmod 1)` (VDM's
low-discrepancy sampler), which lowers the variance of the batch mean.
"""

import math

import jax
import jax.numpy as jnp

from jaxdiff._validation import check_batch
from jaxdiff.gaussian.continuous import continuous_loss
from jaxdiff.gaussian.losses import sum_per_example
from jaxdiff.gaussian.paths import Path, check_continuous_prediction


def vdm_times(key: jax.Array, num: int, path: Path, *, antithetic: bool = True,
              dtype=jnp.float32) -> jax.Array:
    """``num`` times uniform on the path's interval: i.i.d., or VDM's low-discrepancy
    ``(u_0 + i / num) mod 1``."""
    if antithetic:
        u = jnp.mod(jax.random.uniform(key, (), dtype) + jnp.arange(num, dtype=dtype) / num,
                    1.0)
    else:
        u = jax.random.uniform(key, (num,), dtype)
    return path.t_min + (path.t_max - path.t_min) * u


def vdm_terms(key: jax.Array, denoise_fn, path: Path, x0: jax.Array, *,
              prediction: str = "eps", num_bins: int | None = 256, cond=None,
              antithetic: bool = True, prior_std: float | None = None) -> dict[str, jax.Array]:
    r"""The bound's three terms per example ``[B]`` in nats: ``prior``, ``reconstruction``
    and ``diffusion`` (one draw of ``t`` and of the noise per example).

    Args:
      key: PRNG key (times, the diffusion term's noise, the reconstruction's ``z_0``).
      denoise_fn: ``denoise_fn(z_t, t, cond) -> output`` on the path's times.
      path: the path; its ends are :math:`t_0, t_1`.
      x0: data ``[B, ...]``, on the ``num_bins``-level grid of [-1, 1] when discrete.
      prediction: what ``denoise_fn`` outputs (eps, x0, v or velocity).
      num_bins: data levels, or None for continuous data.
      cond: conditioning for ``denoise_fn``.
      antithetic: VDM's low-discrepancy times across the batch.
      prior_std: the prior's std ``s``; default the path's :math:`\sigma(t_1)` (VDM: 1).
    """
    check_batch("x0", x0)
    check_continuous_prediction(prediction)
    # the ends as arrays: a learned path's (jaxdiff.gaussian.learned_path) are traced
    alpha_0, sigma_0 = (jnp.asarray(c, x0.dtype) for c in path.alpha_sigma(
        jnp.asarray(path.t_min, x0.dtype)))
    alpha_1, sigma_1 = (jnp.asarray(c, x0.dtype) for c in path.alpha_sigma(
        jnp.asarray(path.t_max, x0.dtype)))
    if not isinstance(sigma_0, jax.core.Tracer) and float(sigma_0) == 0.0:
        raise ValueError(f"the VDM bound needs sigma > 0 at the path's clean end (its "
                         f"decoder p(x | z_0) has scale sigma_0 / alpha_0); the {path.name!r} "
                         f"path has sigma(t_min) = 0: use a VP path")
    key_t, key_diffusion, key_z0 = jax.random.split(key, 3)
    batch = x0.shape[0]
    dims = math.prod(x0.shape[1:])
    t = vdm_times(key_t, batch, path, antithetic=antithetic, dtype=x0.dtype)
    # continuous_loss's likelihood weight is this integrand averaged over the dims
    diffusion = dims * continuous_loss(key_diffusion, denoise_fn, path, x0,
                                       prediction=prediction, cond=cond, t=t,
                                       weighting="likelihood")
    prior_var = sigma_1**2 if prior_std is None else jnp.asarray(prior_std, x0.dtype) ** 2
    prior = 0.5 * sum_per_example((alpha_1**2 * x0**2 + sigma_1**2) / prior_var - 1.0
                                   - jnp.log(sigma_1**2 / prior_var))
    z0 = alpha_0 * x0 + sigma_0 * jax.random.normal(key_z0, x0.shape, x0.dtype)
    return {"prior": prior, "reconstruction": _reconstruction(x0, z0, alpha_0, sigma_0,
                                                               num_bins),
            "diffusion": diffusion}


def _reconstruction(x0, z0, alpha_0, sigma_0, num_bins):
    r""":math:`-\log p(x | z_0)` per example (module docstring's decoder)."""
    if num_bins is None:
        scale = sigma_0 / alpha_0
        nll = 0.5 * ((x0 - z0 / alpha_0) / scale) ** 2 + jnp.log(scale) + 0.5 * math.log(
            2 * math.pi)
        return sum_per_example(nll)
    levels = jnp.linspace(-1.0, 1.0, num_bins, dtype=x0.dtype).reshape(
        (1,) * z0.ndim + (num_bins,))
    logits = -0.5 * ((z0[..., None] - alpha_0 * levels) / sigma_0) ** 2      # [B, ..., K]
    index = jnp.round((x0 + 1.0) * 0.5 * (num_bins - 1)).astype(jnp.int32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, index[..., None], axis=-1)[..., 0]
    return -sum_per_example(picked)


def vdm_bits_per_dim(key: jax.Array, denoise_fn, path: Path, x0: jax.Array, **options):
    """The sum of :func:`vdm_terms` per example ``[B]`` in bits per dimension."""
    terms = vdm_terms(key, denoise_fn, path, x0, **options)
    nats = terms["prior"] + terms["reconstruction"] + terms["diffusion"]
    return nats / (math.prod(x0.shape[1:]) * math.log(2.0))

