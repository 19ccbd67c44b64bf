r"""Group normalisation (Wu & He 2018, "Group Normalization") for channels-last features.

.. math::
    y = \frac{x - \mu_{b,g}}{\sqrt{\sigma^2_{b,g} + \epsilon}}\,\gamma_c + \beta_c,

with the mean and variance over all positions and the ``C / G`` channels of group ``g`` of
example ``b``. Same parameters (``scale``, ``bias``), defaults and results as
``flax.nnx.GroupNorm``, with a hand-written backward pass in which every sum over
positions is a product with ones (``reductions.sum_positions``; why: that module).
"""

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff.models.reductions import sum_positions
from jaxdiff.typing import Array

_F32 = jnp.float32


def _group_mean(per_channel_BxC: Array, num_groups: int, count: int) -> Array:
    batch, channels = per_channel_BxC.shape
    return per_channel_BxC.reshape(batch, num_groups, channels // num_groups).sum(-1) / count


def _per_channel(per_group_BxG: Array, channels: int) -> Array:
    return jnp.repeat(per_group_BxG, channels // per_group_BxG.shape[1], axis=1)


def _statistics(x_BxPxC: Array, num_groups: int, epsilon: float) -> tuple[Array, Array]:
    """Per-(example, group) mean and ``1 / sqrt(var + eps)``, float32, ``[B, G]`` each; the
    variance is flax's one-pass ``E[x^2] - E[x]^2`` (clipped at 0)."""
    count = x_BxPxC.shape[1] * (x_BxPxC.shape[2] // num_groups)
    mean_BxG = _group_mean(sum_positions(x_BxPxC), num_groups, count)
    mean_square_BxG = _group_mean(sum_positions(jnp.square(x_BxPxC)), num_groups, count)
    variance_BxG = jnp.maximum(mean_square_BxG - jnp.square(mean_BxG), 0.0)
    return mean_BxG, jax.lax.rsqrt(variance_BxG + epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _group_norm(x_BxPxC: Array, scale_C: Array, bias_C: Array, num_groups: int,
                epsilon: float) -> Array:
    return _group_norm_forward(x_BxPxC, scale_C, bias_C, num_groups, epsilon)[0]


def _group_norm_forward(x_BxPxC, scale_C, bias_C, num_groups, epsilon):
    mean_BxG, inv_std_BxG = _statistics(x_BxPxC, num_groups, epsilon)
    channels = x_BxPxC.shape[2]
    gain_BxC = scale_C[None] * _per_channel(inv_std_BxG, channels)
    offset_BxC = bias_C[None] - _per_channel(mean_BxG, channels) * gain_BxC
    y = x_BxPxC * gain_BxC[:, None] + offset_BxC[:, None]
    return y, (x_BxPxC, scale_C, mean_BxG, inv_std_BxG)


def _group_norm_backward(num_groups, epsilon, residuals, dy_BxPxC):
    r""":math:`\partial\beta = \sum dy`, :math:`\partial\gamma = \sum dy\,\hat x`,
    :math:`\partial x = \sigma^{-1}\big(g - \overline{g} - \hat x\,\overline{g \hat x}\big)`
    with :math:`g = dy\,\gamma` and bars the means over a group (the batch-norm backward
    pass per group)."""
    del epsilon
    x_BxPxC, scale_C, mean_BxG, inv_std_BxG = residuals
    channels = x_BxPxC.shape[2]
    count = x_BxPxC.shape[1] * (channels // num_groups)
    mean_BxC = _per_channel(mean_BxG, channels)[:, None]
    inv_std_BxC = _per_channel(inv_std_BxG, channels)[:, None]
    x_hat_BxPxC = (x_BxPxC - mean_BxC) * inv_std_BxC
    dy_sum_BxC = sum_positions(dy_BxPxC)
    dy_x_hat_sum_BxC = sum_positions(dy_BxPxC * x_hat_BxPxC)
    g_mean_BxC = _per_channel(_group_mean(dy_sum_BxC * scale_C[None], num_groups, count), channels)
    g_x_hat_mean_BxC = _per_channel(
        _group_mean(dy_x_hat_sum_BxC * scale_C[None], num_groups, count), channels)
    dx = inv_std_BxC * (dy_BxPxC * scale_C[None, None] - g_mean_BxC[:, None]
                        - x_hat_BxPxC * g_x_hat_mean_BxC[:, None])
    return dx, dy_x_hat_sum_BxC.sum(0), dy_sum_BxC.sum(0)


_group_norm.defvjp(_group_norm_forward, _group_norm_backward)


def group_norm(x: Array, scale_C: Array, bias_C: Array, *, num_groups: int,
               epsilon: float = 1e-6) -> Array:
    """Group-normalises ``x`` (``[B, ..., C]``: every axis between the first and the last is
    a position) with per-channel ``scale`` and ``bias``; computed in float32, returned in
    the dtype of ``x``. Reverse-mode differentiable (a ``jax.custom_vjp``)."""
    channels = x.shape[-1]
    if channels % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide the {channels} channels")
    x_BxPxC = x.reshape(x.shape[0], -1, channels).astype(_F32)
    y = _group_norm(x_BxPxC, scale_C.astype(_F32), bias_C.astype(_F32), num_groups, epsilon)
    return y.reshape(x.shape).astype(x.dtype)


class GroupNorm(nnx.Module):
    """``group_norm`` with learned per-channel ``scale`` (ones) and ``bias`` (zeros): a
    drop-in for ``nnx.GroupNorm(num_features, num_groups=G)``, the same state."""

    def __init__(self, num_features: int, *, num_groups: int, epsilon: float = 1e-6):
        if num_features % num_groups:
            raise ValueError(f"num_groups={num_groups} must divide num_features={num_features}")
        self.num_groups = num_groups
        self.epsilon = epsilon
        self.scale = nnx.Param(jnp.ones((num_features,), _F32))
        self.bias = nnx.Param(jnp.zeros((num_features,), _F32))

    def __call__(self, x: Array) -> Array:
        return group_norm(x, self.scale[...], self.bias[...], num_groups=self.num_groups,
                          epsilon=self.epsilon)
