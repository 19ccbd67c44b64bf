r"""Straightness of sampling trajectories (Liu et al. 2023, Def. 3.5 / eq. 9).

.. math::
    S = \int_0^1 \mathbb E\,\big\|(X_1 - X_0) - \dot X_\tau\big\|^2\,\mathrm d\tau,

with :math:`\tau \in [0, 1]` the trajectory's time rescaled to its ends (:math:`X_1` the
start, :math:`X_0` the end) and :math:`\dot X_\tau` the finite-difference velocity of each
solver step; 0 exactly for straight trajectories traversed at constant speed (rectified
flow's ideal, where one Euler step is exact). Reported per dimension (the squared norm over
the number of dimensions).
"""

import numpy as np


def straightness(states, times) -> float:
    """:math:`S` of trajectories ``states [K, B, ...]`` at decreasing ``times [K]`` (e.g.
    :func:`jaxdiff.gaussian.ode_sample` with ``return_trajectory=True``)."""
    states = np.asarray(states, np.float64)
    times = np.asarray(times, np.float64)
    if states.ndim < 3 or times.shape != states.shape[:1] or len(times) < 2:
        raise ValueError(f"states must be [K >= 2, B, ...] with times [K], got shapes "
                         f"{states.shape} and {times.shape}")
    if not np.all(np.diff(times) < 0):
        raise ValueError("times must be strictly decreasing (from the noise to the data)")
    tau = (times - times[-1]) / (times[0] - times[-1])             # 1 -> 0
    widths = tau[:-1] - tau[1:]                                      # [K - 1]
    flat = states.reshape(states.shape[0], states.shape[1], -1)      # [K, B, D]
    velocity = (flat[:-1] - flat[1:]) / widths[:, None, None]        # dX / d tau per step
    displacement = flat[0] - flat[-1]                                # X_1 - X_0
    error = ((displacement[None] - velocity) ** 2).mean(axis=2).mean(axis=1)   # [K - 1]
    return float((widths * error).sum())
