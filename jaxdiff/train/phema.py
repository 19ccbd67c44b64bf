r"""Post-hoc EMA (Karras et al. 2024, EDM2, Sec. 3 and App. C): train once, choose the EMA
length afterwards.

A **power-function EMA** with exponent :math:`\gamma` averages the training trajectory
:math:`\theta(\tau)` with the profile

.. math:: \hat\theta_\gamma(t) = \int_0^t p_{t,\gamma}(\tau)\,\theta(\tau)\,d\tau, \qquad
          p_{t,\gamma}(\tau) = \frac{\gamma + 1}{t^{\gamma + 1}}\,\tau^\gamma
          \quad (0 \le \tau \le t),

tracked step by step as :math:`\hat\theta \leftarrow \beta\hat\theta + (1 - \beta)\theta`
with :math:`\beta_t = (1 - 1/t)^{\gamma + 1}` after step :math:`t = 1, 2, \dots` (EDM2
eq. 127; :math:`\beta_1 = 0`). Its length is the relative standard deviation of the profile,
:math:`\sigma_\text{rel} = \sqrt{(\gamma + 1) / ((\gamma + 2)^2 (\gamma + 3))}` (EDM2 eq. 123;
:func:`exponent_from_std` solves the cubic of eq. 126 for :math:`\gamma`).

During training two profiles (EDM2: :math:`\sigma_\text{rel}` 0.05 and 0.10) are tracked
and stored every few steps (**snapshots**). Afterwards any profile :math:`p_{T,\gamma_r}` is
approximated by a combination :math:`\sum_i x_i\,p_{t_i,\gamma_i}` of the snapshots'
profiles, least squares in :math:`L^2[0, \infty)`: :math:`A x = b` with the closed-form
inner products (EDM2 Alg. 3)

.. math:: \langle p_{t_a,\gamma_a}, p_{t_b,\gamma_b}\rangle =
          \frac{(\gamma_a + 1)(\gamma_b + 1)}{\gamma_a + \gamma_b + 1}\,
          \frac{\min(t_a, t_b)^{\gamma_a + \gamma_b + 1}}{t_a^{\gamma_a + 1}
          t_b^{\gamma_b + 1}},

the weights normalised to sum to one, and the parameters are
:math:`\sum_i x_i \hat\theta_i` (:func:`posthoc_weights`, :func:`combine`). The profiles are
the continuous-time ones; at a step count ``t`` of a few hundred the discrete update above
follows them to O(1/t).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.typing import PyTree


def std_from_exponent(gamma) -> np.ndarray:
    r""":math:`\sigma_\text{rel}` of the exponent :math:`\gamma > -1` (EDM2 eq. 123)."""
    gamma = np.asarray(gamma, np.float64)
    return np.sqrt((gamma + 1.0) / ((gamma + 2.0) ** 2 * (gamma + 3.0)))


def exponent_from_std(std) -> np.ndarray:
    r"""The exponent :math:`\gamma > -1` of relative std ``std`` in (0, 0.2887): the largest
    real root of :math:`\gamma^3 + 7\gamma^2 + (16 - \sigma^{-2})\gamma + 12 - \sigma^{-2}`
    (EDM2 eq. 126). :math:`\sigma_\text{rel}` falls from :math:`1/\sqrt{12}` at
    :math:`\gamma = -1` (the uniform average) towards 0 as :math:`\gamma` grows."""
    std = np.asarray(std, np.float64)
    flat = std.reshape(-1)
    if np.any(~(flat > 0)) or np.any(flat >= 1.0 / np.sqrt(12.0)):
        raise ValueError(f"std must lie in (0, 1/sqrt(12) = 0.2887), got {std.tolist()}")
    roots = [np.roots([1.0, 7.0, 16.0 - s**-2, 12.0 - s**-2]) for s in flat]
    return np.asarray([r[np.abs(r.imag) < 1e-9].real.max() for r in roots]).reshape(std.shape)


def power_ema_update(ema: PyTree, params: PyTree, step: jax.Array, gamma: float) -> PyTree:
    r"""One update after training step ``step`` (1-based, traced is fine):
    :math:`\beta = (1 - 1/t)^{\gamma + 1}`, :math:`\hat\theta \leftarrow \beta\hat\theta +
    (1 - \beta)\theta`."""
    t = jnp.asarray(step, jnp.float32)
    # 1 - beta = -expm1((gamma + 1) log1p(-1/t)): exact in float32 at any t (the direct
    # (1 - 1/t)^(gamma + 1) loses 1.5% of 1 - beta at t = 1e6)
    rate = -jnp.expm1((gamma + 1.0) * jnp.log1p(-1.0 / t))
    return jax.tree.map(lambda e, p: e + rate * (p - e), ema, params)


def profile_inner_products(steps_a, gammas_a, steps_b, gammas_b) -> np.ndarray:
    r"""The matrix :math:`\langle p_{a_i}, p_{b_j}\rangle` (module docstring), float64."""
    ta, ga = (np.asarray(v, np.float64).reshape(-1, 1) for v in (steps_a, gammas_a))
    tb, gb = (np.asarray(v, np.float64).reshape(1, -1) for v in (steps_b, gammas_b))
    low = np.minimum(ta, tb)
    log = ((ga + gb + 1.0) * np.log(low) - (ga + 1.0) * np.log(ta) - (gb + 1.0) * np.log(tb))
    return (ga + 1.0) * (gb + 1.0) / (ga + gb + 1.0) * np.exp(log)


def posthoc_weights(snapshot_steps, snapshot_stds, target_step: float,
                    target_std: float) -> np.ndarray:
    r"""Weights ``[N]`` (summing to one) of the snapshots whose profiles best approximate the
    power-function profile of ``target_std`` at ``target_step`` (EDM2 Alg. 3).

    Args:
      snapshot_steps: each snapshot's step count ``t_i`` (>= 1).
      snapshot_stds: each snapshot's :math:`\sigma_\text{rel}`.
      target_step: the step the reconstruction stands for (at most the last snapshot's).
      target_std: the :math:`\sigma_\text{rel}` asked for.
    """
    steps = np.asarray(snapshot_steps, np.float64).reshape(-1)
    stds = np.asarray(snapshot_stds, np.float64).reshape(-1)
    if steps.shape != stds.shape or steps.size == 0:
        raise ValueError(f"snapshot_steps and snapshot_stds must be equal-length, non-empty; "
                         f"got {steps.shape} and {stds.shape}")
    if np.any(steps < 1):
        raise ValueError(f"snapshot steps must be >= 1, got {steps.min()}")
    if not 1 <= target_step <= steps.max():
        raise ValueError(f"target_step must lie in [1, {steps.max():g}] (the last snapshot), "
                         f"got {target_step}")
    gammas = exponent_from_std(stds)
    target_gamma = exponent_from_std(np.float64(target_std))
    a = profile_inner_products(steps, gammas, steps, gammas)
    b = profile_inner_products(steps, gammas, [target_step], [target_gamma])[:, 0]
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    return x / x.sum()


def combine(snapshots: list[PyTree], weights) -> PyTree:
    r""":math:`\sum_i x_i \hat\theta_i` of the snapshots' parameter trees, in float64 NumPy
    then cast back to each leaf's dtype."""
    weights = np.asarray(weights, np.float64)
    if len(snapshots) != len(weights):
        raise ValueError(f"{len(snapshots)} snapshots but {len(weights)} weights")

    def mix(*leaves):
        total = sum(w * np.asarray(leaf, np.float64) for w, leaf in zip(weights, leaves,
                                                                         strict=True))
        return np.asarray(total, np.asarray(leaves[0]).dtype)

    return jax.tree.map(mix, *snapshots)
