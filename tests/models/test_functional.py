"""The functional face: init / abstract_init, the pure apply_fn, dropout modes, bf16
compute, recompilation, and label dropout for classifier-free guidance."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdiff.models as jm
from tests.models.util import SMALL_DIT as DIT
from tests.models.util import random_params

UNET_WITH_DROPOUT = jm.UNetConfig(image_size=8, base_channels=8, channel_mults=(1,),
                                  num_res_blocks=1, attention_levels=(), num_groups=4,
                                  dropout=0.3)
TEXT_WITH_DROPOUT = jm.TextTransformerConfig(vocab_size=11, max_length=8, hidden_size=32,
                                             depth=2, num_heads=4, dropout=0.3, cond_dim=16,
                                             frequency_dim=16)


def _leaves(tree):
    return jax.tree.leaves(tree)


def test_init_is_deterministic_in_the_key_and_matches_abstract_init():
    graphdef, params, rest = jm.init(DIT, key=jax.random.key(0))
    _, params_again, _ = jm.init(DIT, key=jax.random.key(0))
    _, params_other, _ = jm.init(DIT, key=jax.random.key(1))
    abstract_graphdef, abstract_params, _ = jm.abstract_init(DIT)
    assert graphdef == abstract_graphdef
    assert jax.tree.structure(params) == jax.tree.structure(abstract_params)
    for leaf, abstract in zip(_leaves(params), _leaves(abstract_params), strict=True):
        assert (leaf.shape, leaf.dtype) == (abstract.shape, abstract.dtype)
    for leaf, again in zip(_leaves(params), _leaves(params_again), strict=True):
        np.testing.assert_array_equal(leaf, again)
    embedding = params["class_embed"]["embedding"][...]
    assert embedding.shape == (DIT.num_classes + 1, DIT.hidden_size)
    assert not np.array_equal(embedding, params_other["class_embed"]["embedding"][...])
    assert jm.count_params(params) == jm.count_params(abstract_params)
    assert jm.count_params(rest) == 0


def test_init_rejects_an_unknown_config():
    with pytest.raises(TypeError, match="config must be one of"):
        jm.init({"image_size": 32}, key=jax.random.key(0))


def _model_inputs(config):
    if isinstance(config, jm.TextTransformerConfig):
        return (jax.random.randint(jax.random.key(5), (2, 8), 0, config.vocab_size),
                jnp.array([0.2, 0.9]))
    return jax.random.normal(jax.random.key(5), (2, 8, 8, 3)), jnp.array([3, 800])


@pytest.mark.parametrize("config", [UNET_WITH_DROPOUT, TEXT_WITH_DROPOUT],
                         ids=["unet", "text"])
def test_same_key_and_input_give_identical_output_and_dropout_only_in_train_mode(config):
    graphdef, abstract_params, rest = jm.abstract_init(config)
    params = random_params(abstract_params)
    x_t, t = _model_inputs(config)
    eval_fn = jm.make_apply_fn(graphdef, rest)
    train_fn = jm.make_apply_fn(graphdef, rest, train=True)

    @jax.jit
    def eval_and_train_outputs(key):
        return eval_fn(params, x_t, t, None, key), train_fn(params, x_t, t, None, key)

    eval_a, train_a = eval_and_train_outputs(jax.random.key(10))
    eval_a_again, train_a_again = eval_and_train_outputs(jax.random.key(10))
    eval_b, train_b = eval_and_train_outputs(jax.random.key(11))
    np.testing.assert_array_equal(eval_a, eval_a_again)
    np.testing.assert_array_equal(train_a, train_a_again)     # same key, same output
    np.testing.assert_array_equal(eval_a, eval_b)             # eval mode: no dropout
    assert float(jnp.abs(train_a - train_b).mean()) > 1e-4    # train mode: key drives dropout
    assert float(jnp.abs(train_a - eval_a).mean()) > 1e-4


def test_train_mode_requires_a_key():
    graphdef, params, rest = jm.abstract_init(DIT)
    train_fn = jm.make_apply_fn(graphdef, rest, train=True)
    with pytest.raises(ValueError, match="key is required"):
        train_fn(params, jnp.zeros((1, 8, 8, 3)), jnp.zeros(1, jnp.int32))


def _matmul_operand_dtypes(jaxpr) -> set[str]:
    """dtypes of every operand of a dot_general or convolution, sub-jaxprs included, except
    GroupNorm's float32 statistics (``reductions.sum_positions``: ones [B, P] x [B, P, C])."""
    dtypes = set()
    for eqn in jaxpr.eqns:
        statistics_sum = (eqn.primitive.name == "dot_general" and eqn.invars[0].aval.ndim == 2
                          and eqn.params["dimension_numbers"] == (((1,), (1,)), ((0,), (0,))))
        if eqn.primitive.name in ("dot_general", "conv_general_dilated") and not statistics_sum:
            dtypes.update(str(var.aval.dtype) for var in eqn.invars)
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    dtypes |= _matmul_operand_dtypes(sub)
    return dtypes


@pytest.mark.parametrize("config, x_t, t, cond", [
    (DIT, jnp.zeros((2, 8, 8, 3)), jnp.array([1, 2]), jnp.array([0, 5])),
    (jm.UNetConfig(image_size=8, base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
                   attention_levels=(1,), num_groups=4, scale_shift_norm=True,
                   num_classes=3),
     jnp.zeros((2, 8, 8, 3)), jnp.array([1, 2]), jnp.array([0, 3])),
    (TEXT_WITH_DROPOUT, jnp.zeros((2, 8), jnp.int32), jnp.array([0.5, 0.1]), None),
], ids=["dit", "unet", "text"])
def test_bf16_compute_runs_every_matmul_and_convolution_in_bf16(config, x_t, t, cond):
    graphdef, params, rest = jm.abstract_init(config)
    bf16_fn = jm.make_apply_fn(graphdef, rest, train=True, compute_dtype=jnp.bfloat16)
    jaxpr = jax.make_jaxpr(bf16_fn)(params, x_t, t, cond, jax.random.key(0))
    assert _matmul_operand_dtypes(jaxpr.jaxpr) == {"bfloat16"}
    assert jax.eval_shape(bf16_fn, params, x_t, t, cond, jax.random.key(0)).dtype == jnp.float32


def test_bf16_compute_from_float32_parameters_stays_close_to_float32():
    graphdef, abstract_params, rest = jm.abstract_init(DIT)
    params = random_params(abstract_params)
    x_t = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
    t, labels = jnp.array([1, 10, 100, 999]), jnp.array([0, 1, 2, 5])
    fp32_fn = jm.make_apply_fn(graphdef, rest)
    bf16_fn = jm.make_apply_fn(graphdef, rest, compute_dtype=jnp.bfloat16)
    out_fp32, out_bf16 = jax.jit(lambda p: (fp32_fn(p, x_t, t, labels),
                                            bf16_fn(p, x_t, t, labels)))(params)
    assert {leaf.dtype for leaf in _leaves(params)} == {jnp.dtype(jnp.float32)}
    assert out_bf16.dtype == jnp.float32
    # bf16 keeps 8 mantissa bits: relative rounding 2^-9 ~ 0.002 per operation.
    relative_error = jnp.linalg.norm(out_bf16 - out_fp32) / jnp.linalg.norm(out_fp32)
    assert 1e-3 < float(relative_error) < 0.05


def test_one_compilation_per_input_shape():
    graphdef, abstract_params, rest = jm.abstract_init(DIT)
    params = random_params(abstract_params)
    apply_fn = jax.jit(chex.assert_max_traces(jm.make_apply_fn(graphdef, rest), n=1))
    for seed in range(3):
        x_t = jax.random.normal(jax.random.key(seed), (2, 8, 8, 3))
        t = jax.random.randint(jax.random.key(seed), (2,), 0, 1000)
        apply_fn(params, x_t, t, jnp.array([seed, 5]))
    with pytest.raises(AssertionError, match="traced > 1 times"):
        apply_fn(params, jnp.zeros((3, 8, 8, 3)), jnp.zeros(3, jnp.int32),
                 jnp.zeros(3, jnp.int32))


def test_bind_gives_the_denoise_fn_of_the_math():
    graphdef, abstract_params, rest = jm.abstract_init(DIT)
    params = random_params(abstract_params)
    apply_fn = jm.make_apply_fn(graphdef, rest)
    denoise_fn = jm.bind(apply_fn, params)
    x_t, t = jax.random.normal(jax.random.key(1), (2, 8, 8, 3)), jnp.array([4, 40])
    out_bound, out_direct = jax.jit(lambda x, t: (denoise_fn(x, t, jnp.array([1, 2])),
                                                  apply_fn(params, x, t, jnp.array([1, 2]))))(
        x_t, t)
    np.testing.assert_array_equal(out_bound, out_direct)


def test_drop_labels_replaces_a_fraction_rate_by_the_null_class():
    labels = jnp.arange(20_000, dtype=jnp.int32) % 7
    dropped = jm.drop_labels(jax.random.key(0), labels, num_classes=7, rate=0.1)
    is_null = np.asarray(dropped == 7)
    assert is_null.mean() == pytest.approx(0.1, abs=0.01)
    np.testing.assert_array_equal(np.asarray(dropped)[~is_null], np.asarray(labels)[~is_null])
    with pytest.raises(TypeError, match="labels must have an integer"):
        jm.drop_labels(jax.random.key(0), labels.astype(jnp.float32), num_classes=7, rate=0.1)
    with pytest.raises(ValueError, match="rate must lie in"):
        jm.drop_labels(jax.random.key(0), labels, num_classes=7, rate=1.5)


def test_init_compiles_once_and_matches_an_optimised_compile(monkeypatch):
    # init compiles its one-off initialiser without LLVM's expensive passes; the
    # parameters must be bit-identical to the default jitted initialiser
    from flax import nnx

    from jaxdiff.models import functional

    config = jm.UNetConfig(image_size=8, base_channels=8, channel_mults=(1, 2),
                           num_res_blocks=1, attention_levels=(1,), num_groups=4,
                           num_classes=3)
    graphdef, params, rest = jm.init(config, key=jax.random.key(7))

    def optimised(key):
        _, p, r = nnx.split(jm.build_model(config, key=key), nnx.Param, ...)
        return p, r

    expected, _ = jax.jit(optimised)(jax.random.key(7))
    assert graphdef == jm.abstract_init(config)[0]
    for leaf, want in zip(_leaves(params), _leaves(expected), strict=True):
        np.testing.assert_array_equal(leaf, want)
    # a second init of the same config (any key) neither traces nor compiles again
    calls = []
    monkeypatch.setattr(functional, "build_model",
                        lambda *a, **k: calls.append(1) or jm.build_model(*a, **k))
    _, other, _ = jm.init(config, key=jax.random.key(8))
    assert calls == []
    assert not np.array_equal(_leaves(other)[0], _leaves(params)[0]) or \
        not np.array_equal(_leaves(other)[-1], _leaves(params)[-1])
    # inside jit the key is a tracer: init joins the caller's trace
    inside = jax.jit(lambda key: jm.init(config, key=key)[1])(jax.random.key(7))
    for leaf, want in zip(_leaves(inside), _leaves(expected), strict=True):
        np.testing.assert_array_equal(leaf, want)
