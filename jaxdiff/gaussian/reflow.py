r"""Reflow (Liu et al. 2023, "Flow straight and fast", Alg. 1): couple each prior draw with
the sample the flow's ODE takes it to, and train a new flow on the pairs.

1-rectified flow learns the velocity of :math:`x_t = (1 - t)x_0 + t\epsilon` with ``x0`` and
``eps`` drawn independently; its ODE paths cross and bend. Reflow draws
:math:`z \sim \mathcal N(0, I)`, solves the ODE from ``z`` at :math:`t = 1` to
:math:`\hat x_0 = \mathrm{ODE}(z)` (:func:`reflow_pairs`), and trains 2-rectified flow on the
coupled pairs :math:`(\hat x_0, z)` (:func:`jaxdiff.gaussian.continuous_loss` with
``noise=z``): the same marginals, straighter paths, fewer steps for the same samples.

The procedure in the library (README, "Reflow"): train a ``flow`` run; ``python
experiments/reflow.py --workdir RUN --out pairs.npz`` writes the pairs as an array file
(``images`` clipped to the data range, ``noise``, and ``labels`` of a conditional run);
train a second ``flow`` run with ``data.name=pairs.npz`` and ``train.init_from=RUN`` (Liu
et al. start 2-rectified flow from the 1-rectified one).
"""

import jax
import jax.numpy as jnp

from jaxdiff.gaussian.ode import DEFAULT_STEPS, ode_sample, time_grid
from jaxdiff.gaussian.paths import Path


def check_pure_noise_end(path: Path) -> None:
    r"""Raises a ``ValueError`` unless ``path`` ends in pure noise (:math:`\alpha = 0`,
    :math:`\sigma = 1` at ``t_max``): only there is a prior draw the :math:`\epsilon` of the
    pair's training draws."""
    alpha, sigma = path.alpha_sigma_value(path.t_max)
    if (alpha, sigma) != (0.0, 1.0):
        raise ValueError(f"reflow couples the prior draw with the sample: it needs a path that "
                         f"ends in pure noise (alpha = 0, sigma = 1 at t_max, rectified flow); "
                         f"the {path.name!r} path has alpha = {alpha:.3g}, sigma = {sigma:.3g}")


def reflow_pairs(key: jax.Array, denoise_fn, path: Path, shape, *, solver: str = "euler",
                 num_steps: int | None = None, dtype=jnp.float32, **ode_options):
    r"""``(noise, samples)``: ``noise`` :math:`z \sim \mathcal N(0, I)` of shape ``shape``
    and the samples :func:`jaxdiff.gaussian.ode_sample` reaches from :math:`x_{t_\max} = z`.

    The path must end in pure noise (:math:`\alpha(t_\max) = 0`, :math:`\sigma(t_\max) = 1`:
    rectified flow), so that ``z`` is the :math:`\epsilon` that the pair's training draws
    :math:`x_t = \alpha x_0 + \sigma z` are made of, and the grid must start at
    :math:`t_\max` (the uniform grid). ``ode_options`` are :func:`ode_sample`'s (``spacing``,
    ``shift``, ``prediction``, ``cond``, ``guidance_scale``, ...).
    """
    check_pure_noise_end(path)
    steps = DEFAULT_STEPS[solver] if num_steps is None else num_steps
    spacing = ode_options.get("spacing") or path.sampling_spacing
    first = time_grid(path, steps, spacing=spacing, shift=ode_options.get("shift", 1.0))[0]
    if first != path.t_max:
        raise ValueError(f"reflow starts the ODE at t_max = {path.t_max}; the {spacing!r} grid "
                         f"starts at {first}: use spacing='uniform'")
    key_noise, key_ode = jax.random.split(key)
    noise = jax.random.normal(key_noise, tuple(shape), dtype)
    samples = ode_sample(key_ode, denoise_fn, path, shape, solver=solver, num_steps=steps,
                         x_init=noise, dtype=dtype, **ode_options)
    return noise, samples
