"""Position and time embeddings shared by the UNet, DiT and text transformer.

* sinusoidal timestep features (Vaswani et al. 2017, as used for the diffusion time in
  Ho et al. 2020, "Denoising Diffusion Probabilistic Models"), and the MLP that follows;
* fixed 2D sine-cosine patch positions (He et al. 2022 "Masked Autoencoders", used by
  Peebles & Xie 2023 "Scalable Diffusion Models with Transformers");
* rotary position embeddings (Su et al. 2021, "RoFormer");
* lookup tables for tokens, classes and learned positions.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdiff.models.initializers import XAVIER_UNIFORM
from jaxdiff.typing import Array


def timestep_embedding(t_B: Array, dim: int, *, max_period: float = 10_000.0,
                       cos_first: bool = True, freq_shift: float = 0.0) -> Array:
    r"""Sinusoidal features of (possibly fractional) timesteps.

    .. math::
        e(t) = [\cos(t\,\omega_0), \dots, \cos(t\,\omega_{h-1}),
                \sin(t\,\omega_0), \dots, \sin(t\,\omega_{h-1})],
        \quad \omega_k = \text{max\_period}^{-k/(h - \text{freq\_shift})},\ h = d/2

    (sines first when ``cos_first=False``). Ho et al. 2020's code has the sines first and
    ``freq_shift = 1`` (diffusers' ``flip_sin_to_cos=False, freq_shift=1``); ADM and DiT
    the cosines first and 0. The highest frequency is 1 per unit of ``t``, so ``t`` should
    be given in timestep units (``[0, T)`` with ``T`` around 1000), not in ``[0, 1]``.

    Args:
      t_B: ``[B]`` timesteps, integer or floating; converted to float32.
      dim: even feature size.
      max_period: the longest wavelength.
      cos_first: the cosines in the first half of the features.
      freq_shift: subtracted from ``h`` in the exponent's denominator.

    Returns:
      ``float32 [B, dim]``.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    if not half - freq_shift > 0:
        raise ValueError(f"freq_shift must be < dim / 2 = {half}, got {freq_shift}")
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32)
                          / (half - freq_shift))
    angles_BxF = t_B.astype(jnp.float32)[:, None] * frequencies[None, :]
    parts = [jnp.cos(angles_BxF), jnp.sin(angles_BxF)]
    return jnp.concatenate(parts if cos_first else parts[::-1], axis=-1)


class TimestepMLP(nnx.Module):
    """Sinusoidal features followed by ``Linear -> SiLU -> Linear`` (Ho et al. 2020, App. B).

    The sinusoidal features are cast to the dtype of the first layer's kernel, so the
    whole embedding runs in the compute dtype of the parameters.
    """

    def __init__(
        self,
        *,
        frequency_dim: int,
        embed_dim: int,
        kernel_init: nnx.Initializer = XAVIER_UNIFORM,
        cos_first: bool = True,
        freq_shift: float = 0.0,
        rngs: nnx.Rngs,
    ):
        self.frequency_dim = frequency_dim
        self.cos_first = cos_first
        self.freq_shift = freq_shift
        self.hidden = nnx.Linear(frequency_dim, embed_dim, kernel_init=kernel_init, rngs=rngs)
        self.output = nnx.Linear(embed_dim, embed_dim, kernel_init=kernel_init, rngs=rngs)

    def __call__(self, t_B: Array) -> Array:
        features = timestep_embedding(t_B, self.frequency_dim, cos_first=self.cos_first,
                                      freq_shift=self.freq_shift)
        features = features.astype(self.hidden.kernel.dtype)
        return self.output(jax.nn.silu(self.hidden(features)))


def sincos_2d_position_embedding(grid_size: int, dim: int, *,
                                 columns_first: bool = True) -> np.ndarray:
    r"""Fixed 2D sine-cosine positions of a ``grid_size x grid_size`` patch grid.

    Half of the features encode the column, half the row, each with the 1D sinusoid of
    He et al. 2022 (as in DiT, Peebles & Xie 2023):

    .. math::
        e(i, j) = [s(j), s(i)],\quad s(p) = [\sin(p\,\omega_0), \dots, \sin(p\,\omega_{q-1}),
                  \cos(p\,\omega_0), \dots, \cos(p\,\omega_{q-1})],
        \quad \omega_k = 10000^{-k/q},\ q = d/4

    for the patch in row ``i`` and column ``j``: the column first, as in the MAE and DiT
    code (``np.meshgrid(grid_w, grid_h)``) and diffusers; ``[s(i), s(j)]`` when
    ``columns_first=False``. Computed with NumPy: it is a constant of the architecture, not
    a parameter.

    Returns:
      ``float32 [grid_size * grid_size, dim]``, row-major over the grid.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4, got {dim}")
    rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")
    frequencies = 1.0 / 10_000 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

    def one_axis(positions: np.ndarray) -> np.ndarray:
        angles = positions.reshape(-1, 1) * frequencies.reshape(1, -1)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    halves = [one_axis(cols), one_axis(rows)]
    return np.concatenate(halves if columns_first else halves[::-1], axis=1).astype(np.float32)


def apply_rotary(x_BxLxHxD: Array, positions_BxL: Array, *, base: float = 10_000.0) -> Array:
    r"""Rotary position embedding (Su et al. 2021): rotates feature pairs by position.

    The head dimension is split into halves ``(x_1, x_2)`` and each pair is rotated by
    the angle :math:`p\,\theta_k`, :math:`\theta_k = \text{base}^{-2k/D}`:

    .. math::
        (x_1, x_2) \mapsto (x_1 \cos p\theta - x_2 \sin p\theta,\;
                            x_2 \cos p\theta + x_1 \sin p\theta)

    so that query-key dot products depend only on relative positions.

    Args:
      x_BxLxHxD: queries or keys, ``D`` even.
      positions_BxL: integer positions of the ``L`` tokens.
    """
    head_dim = x_BxLxHxD.shape[-1]
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
    half = head_dim // 2
    inverse_frequencies = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles_BxLx1xF = (positions_BxL.astype(jnp.float32)[:, :, None, None]
                      * inverse_frequencies[None, None, None, :])
    cos, sin = jnp.cos(angles_BxLx1xF), jnp.sin(angles_BxLx1xF)
    x1, x2 = jnp.split(x_BxLxHxD.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return rotated.astype(x_BxLxHxD.dtype)


class Embedding(nnx.Module):
    """A lookup table ``[num_embeddings, features]`` of learned vectors.

    Unlike ``nnx.Embed``, whose output dtype is fixed when the module is built, the
    lookups have the dtype of the table, so casting the parameters for mixed precision
    (``make_apply_fn(compute_dtype=...)``) casts them too.
    """

    def __init__(self, num_embeddings: int, features: int, *, init: nnx.Initializer,
                 rngs: nnx.Rngs):
        self.embedding = nnx.Param(init(rngs.params(), (num_embeddings, features), jnp.float32))

    def __call__(self, ids: Array) -> Array:
        """``ids`` integer array of any shape -> ``ids.shape + (features,)``."""
        return jnp.take(self.embedding[...], ids, axis=0)
