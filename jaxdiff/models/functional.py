"""The functional face of the models: config + key -> ``(graphdef, params, rest)`` -> a
pure ``apply_fn(params, x_t, t, cond, key)`` -> (``bind``) the ``denoise_fn(x_t, t, cond)`` of
the diffusion math.

Flax NNX modules are split once (``nnx.split``) into a static graph definition, the
trainable parameters and the remaining state; every jitted function merges them back
inside (``nnx.merge``), so training, sampling and checkpointing handle plain pytrees.
Mixed precision follows Micikevicius et al. 2018, "Mixed Precision Training": parameters
stay float32 and are cast to the compute dtype inside the function, so gradients and
optimizer state remain float32.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff.models.autoencoder import AutoencoderKL, AutoencoderKLConfig
from jaxdiff.models.dit import DiT, DiTConfig
from jaxdiff.models.text_transformer import TextTransformer, TextTransformerConfig
from jaxdiff.models.unet import UNet, UNetConfig
from jaxdiff.typing import Array, DenoiseFn, PRNGKey, PyTree

NetworkConfig = UNetConfig | DiTConfig | TextTransformerConfig | AutoencoderKLConfig
Model = UNet | DiT | TextTransformer | AutoencoderKL
ApplyFn = Callable[..., Array]

_MODEL_FOR_CONFIG: dict[type, type] = {
    UNetConfig: UNet,
    DiTConfig: DiT,
    TextTransformerConfig: TextTransformer,
    AutoencoderKLConfig: AutoencoderKL,
}


def build_model(config: NetworkConfig, *, key: PRNGKey) -> Model:
    """The NNX module described by ``config``, its parameters drawn from ``key``.

    Works under ``nnx.eval_shape`` (abstract parameters) and ``jax.jit``. The parameters
    are drawn with JAX's non-partitionable threefry: one random draw per parameter
    dominates the initialisation program, and XLA compiles these about 3x faster on CPU
    than the partitionable default.
    """
    model_class = _MODEL_FOR_CONFIG.get(type(config))
    if model_class is None:
        raise TypeError(f"config must be one of {[c.__name__ for c in _MODEL_FOR_CONFIG]}, "
                        f"got {type(config).__name__}")
    with jax.threefry_partitionable(False):
        return model_class(config, rngs=nnx.Rngs(params=key))


def abstract_init(config: NetworkConfig) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """``(graphdef, params, rest)`` with ``jax.ShapeDtypeStruct`` leaves; allocates nothing."""
    model = nnx.eval_shape(lambda: build_model(config, key=jax.random.key(0)))
    return nnx.split(model, nnx.Param, ...)


@jax.jit(static_argnames="config")
def _init_states(config: NetworkConfig, key: PRNGKey) -> tuple[nnx.State, nnx.State]:
    _, params, rest = nnx.split(build_model(config, key=key), nnx.Param, ...)
    return params, rest


def init(config: NetworkConfig, *, key: PRNGKey) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """Builds the model and splits it into ``(graphdef, params, rest)``.

    The parameters are initialised in one jitted computation, traced and compiled once per
    config and key type (op by op, every new parameter shape would compile its own
    initialiser), without LLVM's expensive passes: the program runs once, and the
    parameters are bit-identical to a default compile. ``init`` also works inside
    ``jax.jit`` and ``nnx.eval_shape``.

    ``params`` holds every ``nnx.Param``; ``rest`` holds any other state (empty for the
    models here, kept so the triple is the same for every NNX module).
    """
    if type(config) not in _MODEL_FOR_CONFIG:
        build_model(config, key=key)  # raises the TypeError that names the configs
    if isinstance(key, jax.core.Tracer):  # inside jit / eval_shape: part of the caller's trace
        graphdef = abstract_init(config)[0]
        params, rest = _init_states(config, key)
        return graphdef, params, rest
    graphdef, initialise = _compiled_init(config, key)
    params, rest = initialise(key)
    return graphdef, params, rest


# The initialisation program runs once: threefry bit generation and element-wise scaling
# per parameter. Skipping LLVM's expensive passes compiles it faster and gives bit-identical
# parameters (checked by the tests); ``xla_backend_optimization_level=0`` would halve the
# compile time but changes some normal draws by one ulp, so it is not used.
_FAST_COMPILE_OPTIONS = {"xla_llvm_disable_expensive_passes": True}
_COMPILED_INIT: dict[tuple, tuple[nnx.GraphDef, Callable]] = {}


def _compiled_init(config: NetworkConfig, key: PRNGKey) -> tuple[nnx.GraphDef, Callable]:
    """The graph definition and the compiled initialiser of ``config``, traced once (the
    graph definition is captured from the same trace, so the model is built only once)
    and cached per config and key type."""
    cache_key = (config, tuple(key.shape), str(key.dtype), jax.default_backend())
    if cache_key not in _COMPILED_INIT:
        captured = {}

        def states(key):
            graphdef, params, rest = nnx.split(build_model(config, key=key), nnx.Param, ...)
            captured["graphdef"] = graphdef
            return params, rest

        lowered = jax.jit(states).lower(key)
        options = _FAST_COMPILE_OPTIONS if jax.default_backend() == "cpu" else None
        _COMPILED_INIT[cache_key] = (captured["graphdef"],
                                     lowered.compile(compiler_options=options))
    return _COMPILED_INIT[cache_key]


def count_params(params: PyTree) -> int:
    """Number of scalars in ``params`` (arrays or ``ShapeDtypeStruct`` leaves)."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(params))


def cast_floating(tree: PyTree, dtype: Any) -> PyTree:
    """Casts every floating leaf of ``tree`` to ``dtype``; integer leaves are kept."""
    return jax.tree.map(
        lambda leaf: leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf,
        tree)


def make_apply_fn(graphdef: nnx.GraphDef, rest: nnx.State, *, train: bool = False,
                  compute_dtype: Any = None) -> ApplyFn:
    """The pure network function ``apply_fn(params, x_t, t, cond=None, key=None) -> output``;
    :func:`bind` fixes ``params`` (and ``key``) to give the ``denoise_fn(x_t, t, cond)``.

    Args:
      graphdef: from ``init`` / ``abstract_init``.
      rest: the non-parameter state from ``init``.
      train: dropout on, driven by ``key`` (then required); off in eval mode, where
        ``key`` is ignored so samplers can pass one uniformly.
      compute_dtype: e.g. ``jnp.bfloat16`` to run the network in that dtype: floating
        parameters and ``x_t`` are cast inside the function (parameters stay float32
        outside it, and so do their gradients). ``None`` computes in the parameters'
        dtype.

    Returns:
      A function of ``(params, x_t, t, cond=None, key=None)`` returning the model's
      output as float32; jit it, differentiate it with respect to ``params``.
    """

    def apply_fn(params: nnx.State, x_t: Array, t: Array | None, cond: Any = None,
                 key: PRNGKey | None = None) -> Array:
        if train and key is None:
            raise ValueError("key is required by a train-mode apply_fn (it drives dropout)")
        if compute_dtype is not None:
            params = cast_floating(params, compute_dtype)
            x_t = cast_floating(x_t, compute_dtype)   # an array, or a tree (TwoStream)
        model = nnx.merge(graphdef, params, rest)
        output = model(x_t, t, cond, dropout_key=key if train else None)
        return output.astype(jnp.float32)

    return apply_fn


def bind(apply_fn: ApplyFn, params: nnx.State, key: PRNGKey | None = None) -> DenoiseFn:
    """Fixes ``params`` (and the dropout ``key``) of an ``apply_fn`` (:func:`make_apply_fn`) to
    give the ``DenoiseFn`` the math expects: ``denoise_fn(x_t, t, cond=None)``."""

    def denoise_fn(x_t: Array, t: Array, cond: Any = None) -> Array:
        return apply_fn(params, x_t, t, cond, key)

    return denoise_fn


def make_decode_fns(graphdef: nnx.GraphDef, rest: nnx.State, *,
                    compute_dtype: Any = None) -> tuple[Callable, Callable]:
    """The pure key-value-cache decoder of a causal or block ``TextTransformer``:
    ``init_cache(params, batch_size) -> cache`` and ``decode(params, tokens, cache, cond=None)
    -> (logits float32, cache)``, the functional faces of ``TextTransformer.init_cache`` and
    ``decode_step`` (a causal model: ``tokens [B]``, logits ``[B, V]``) or ``decode_block``
    (a block model: ``tokens [B, block_size]``, logits ``[B, block_size, V]``), eval mode;
    ``cond`` is a label-conditioned model's labels ``[B]``.

    ``jaxdiff.autoregressive.ar_sample_cached`` and ``jaxdiff.discrete.block_sample`` take
    ``functools.partial(decode, params)`` and ``init_cache(params, B)``. ``compute_dtype``
    casts the parameters inside ``decode``, as in :func:`make_apply_fn` (the cache stays
    float32).
    """

    def init_cache(params: nnx.State, batch_size: int):
        return nnx.merge(graphdef, params, rest).init_cache(batch_size)

    def decode(params: nnx.State, tokens: Array, cache, cond=None):
        if compute_dtype is not None:
            params = cast_floating(params, compute_dtype)
        model = nnx.merge(graphdef, params, rest)
        step = model.decode_step if model.config.causal else model.decode_block
        logits, cache = step(tokens, cache, cond=cond)
        return logits.astype(jnp.float32), cache

    return init_cache, decode


def make_autoencoder_fns(graphdef: nnx.GraphDef, rest: nnx.State) -> tuple[Callable, Callable]:
    """The pure faces of an ``AutoencoderKL``: ``encode(params, x) -> (mean, log_variance)``
    and ``decode(params, z) -> x``, in the parameters' dtype."""

    def encode(params: nnx.State, x: Array) -> tuple[Array, Array]:
        return nnx.merge(graphdef, params, rest).encode(x)

    def decode(params: nnx.State, z: Array) -> Array:
        return nnx.merge(graphdef, params, rest).decode(z)

    return encode, decode


def make_discriminator_fn(graphdef: nnx.GraphDef, rest: nnx.State) -> Callable:
    """``discriminate(params, x) -> logits`` of an ``AutoencoderKL`` with a discriminator."""
    return lambda params, x: nnx.merge(graphdef, params, rest).discriminate(x)
