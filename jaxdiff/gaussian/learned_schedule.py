r"""VDM's learned noise schedule (Kingma et al. 2021, Sec. 3.5 and App. D): a monotone
network for :math:`\gamma(t) = -\lambda(t)` whose ends are learned with it.

.. math::
    \gamma(t) = b + |w|\,t + \frac1F \sum_{k=1}^{F} |v_k|\,\phi\big(|u_k|(2t - 1) + c_k\big),
    \qquad \phi(x) = 2\,\mathrm{sigmoid}(x) - 1,

increasing in ``t`` for any parameters (every weight enters through its absolute value, as
VDM's ``DenseMonotone`` layers), so :math:`\lambda = -\gamma` decreases: a VP
:class:`~jaxdiff.gaussian.paths.Path` (:func:`learned_path`) with
:math:`\alpha^2 = \mathrm{sigmoid}(\lambda)`. Its ends :math:`\lambda(0), \lambda(1)` are
functions of the parameters, so the bound (:func:`jaxdiff.gaussian.vdm_terms`, which reads
them as arrays) trains them: in continuous time the diffusion term depends on the schedule
only through its ends (VDM eq. 15), and the ends trade the reconstruction term against the
prior term. VDM's reference code trains every parameter of the schedule on the bound; the
paper's alternative for the interior (minimising the variance of the estimate) is not built
here.

Built as pure functions of a parameter dict so that a path can be made from traced
parameters inside a loss (``jax.grad`` of the bound with respect to them works) and from
concrete ones for sampling.
"""

import jax
import jax.numpy as jnp

from jaxdiff.gaussian.paths import Path

INVERSE_ITERATIONS = 60
"""Bisection steps of :func:`learned_path`'s ``time_at`` (t to ~1e-18 of [0, 1])."""


def _nonlinear(params, t):
    lead = (1,) * t.ndim                                # the features on a last axis
    kernel, bias, out = (params[k].reshape(lead + (-1,))
                         for k in ("hidden_kernel", "hidden_bias", "out_kernel"))
    hidden = jnp.abs(kernel) * (2.0 * t[..., None] - 1.0) + bias
    return jnp.mean(jnp.abs(out) * (2.0 * jax.nn.sigmoid(hidden) - 1.0), axis=-1)


def learned_gamma(params: dict, t) -> jax.Array:
    r""":math:`\gamma(t)` of the module docstring, elementwise in ``t``."""
    t = jnp.asarray(t)
    return params["bias"] + jnp.abs(params["scale"]) * t + _nonlinear(params, t)


def init_learned_schedule(key: jax.Array, *, log_snr_max: float = 13.3,
                          log_snr_min: float = -5.0, features: int = 1024,
                          dtype=jnp.float32) -> dict:
    r"""Parameters whose schedule starts at exactly :math:`\lambda(0) =` ``log_snr_max`` and
    :math:`\lambda(1) =` ``log_snr_min`` (VDM's CIFAR-10 values by default), with the hidden
    layer's weights standard normal as in VDM (its contribution is absorbed into ``b`` and
    ``w`` at the ends)."""
    if not log_snr_min < log_snr_max:
        raise ValueError(f"need log_snr_min < log_snr_max, got {log_snr_min}, {log_snr_max}")
    if not isinstance(features, int) or features < 1:
        raise ValueError(f"features must be a positive int, got {features!r}")
    key_hidden, key_out = jax.random.split(key)
    params = {"hidden_kernel": jax.random.normal(key_hidden, (features,), dtype),
              "hidden_bias": jnp.zeros((features,), dtype),
              "out_kernel": jax.random.normal(key_out, (features,), dtype)}
    at_0, at_1 = (_nonlinear(params, jnp.asarray(t, dtype)) for t in (0.0, 1.0))
    span = (log_snr_max - log_snr_min) - (at_1 - at_0)
    if not float(span) > 0:
        raise ValueError(f"log_snr_max - log_snr_min = {log_snr_max - log_snr_min:g} is "
                         f"smaller than the hidden layer's span {float(at_1 - at_0):.3g} at "
                         f"init: widen the range")
    return {**params, "bias": jnp.asarray(-log_snr_max, dtype) - at_0,
            "scale": jnp.asarray(span, dtype)}


def learned_path(params: dict, *, name: str = "vp_learned") -> Path:
    r"""The VP path of the learned schedule on ``t`` in [0, 1]; the network is told
    ``1000 t``; ``time_at`` inverts :math:`\lambda` by bisection (clipped to [0, 1])."""
    def log_snr(t):
        return -learned_gamma(params, t)

    def alpha_sigma(t):
        lam = log_snr(t)
        return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))

    def time_at(lam):
        lam = jnp.asarray(lam)

        def halve(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            above = log_snr(mid) > lam            # lambda decreases: the root is later
            return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

        lo, hi = jax.lax.fori_loop(0, INVERSE_ITERATIONS, halve,
                                   (jnp.zeros_like(lam), jnp.ones_like(lam)))
        return 0.5 * (lo + hi)

    return Path(name=name, alpha_sigma=alpha_sigma, log_snr=log_snr, time_at=time_at,
                model_time=lambda t: 1000.0 * t, t_min=0.0, t_max=1.0)
