r"""EDM's preconditioning (Karras et al. 2022, Sec. 5 and Table 1).

The network :math:`F_\theta` is wrapped into the denoiser

.. math::
    D(x; \sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,
                   F_\theta(c_\text{in}(\sigma)\,x;\ c_\text{noise}(\sigma)),

    c_\text{skip} = \frac{\sigma_d^2}{\sigma^2 + \sigma_d^2},\quad
    c_\text{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
    c_\text{in} = \frac{1}{\sqrt{\sigma^2 + \sigma_d^2}},\quad
    c_\text{noise} = \tfrac14\ln\sigma,

so that for data of variance :math:`\sigma_d^2` the network's input and its effective
target :math:`(x_0 - c_\text{skip}x)/c_\text{out}` have unit variance at every
:math:`\sigma`; the EDM loss :math:`\lambda(\sigma)\|D - x_0\|^2` with
:math:`\lambda = 1/c_\text{out}^2` is then the unit-weighted MSE of :math:`F`
(``weighting="edm"`` of :func:`jaxdiff.gaussian.continuous.continuous_loss` with
``prediction="x0"`` on the ``ve`` path). Training draws
:math:`\ln\sigma \sim \mathcal N(-1.2, 1.2^2)` (``density="log_normal"``); sampling is
:func:`jaxdiff.gaussian.ode.ode_sample` with ``solver="heun"`` on the ``karras`` grid
(18 steps, 35 NFE), with churn for Alg. 2.
"""

import jax
import jax.numpy as jnp

from jaxdiff.gaussian.forward import expand_to

SIGMA_DATA = 0.5
"""EDM's :math:`\\sigma_d` for images in [-1, 1]."""


def edm_scalings(sigma: jax.Array, sigma_data: float = SIGMA_DATA):
    r"""``(c_skip, c_out, c_in, c_noise)`` at ``sigma`` (elementwise; module docstring)."""
    if not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
    total = sigma**2 + sigma_data**2
    return (sigma_data**2 / total, sigma * sigma_data * jax.lax.rsqrt(total),
            jax.lax.rsqrt(total), 0.25 * jnp.log(sigma))


def edm_denoiser(net_fn, *, sigma_data: float = SIGMA_DATA):
    r"""``denoise_fn(x, sigma, cond) -> D(x; sigma)``, an x0 prediction on the ``ve`` path,
    from the raw network ``net_fn(x_in, c_noise, cond) -> F`` (module docstring)."""
    if not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data}")

    def denoise_fn(x, sigma, cond=None):
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sigma_data)
        out = net_fn(expand_to(c_in, x) * x, c_noise, cond)
        return expand_to(c_skip, x) * x + expand_to(c_out, x) * out

    return denoise_fn
