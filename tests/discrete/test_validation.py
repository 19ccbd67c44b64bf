"""Bad input fails early with an error that names the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete as jd
from jaxdiff._validation import check_int

ABSORBING = jd.d3pm_process("absorbing", vocab_size=5, num_steps=10, mask_id=4)
UNIFORM = jd.d3pm_process("uniform", vocab_size=4, num_steps=10)
MASKED = jd.masked_process("loglinear", vocab_size=5, mask_id=4)
X0 = jnp.asarray([[0, 1, 2], [3, 2, 1]], jnp.int32)
T_INT = jnp.asarray([0, 9], jnp.int32)
T_FLOAT = jnp.asarray([0.5, 1.0], jnp.float32)
KEY = jax.random.key(0)


def _fn(vocab):
    return lambda x, t, cond=None: jnp.zeros(x.shape + (vocab,))


def test_unknown_names():
    with pytest.raises(ValueError, match="transition must be one of"):
        jd.d3pm_process("gaussian", vocab_size=5, num_steps=10)
    with pytest.raises(ValueError, match="schedule must be one of"):
        jd.d3pm_process("uniform", vocab_size=5, num_steps=10, schedule="linear")
    with pytest.raises(ValueError, match="schedule must be one of"):
        jd.masked_process("linear", vocab_size=5, mask_id=4)


def test_bad_process_arguments():
    with pytest.raises(ValueError, match="mask_id is required"):
        jd.d3pm_process("absorbing", vocab_size=5, num_steps=10)
    with pytest.raises(ValueError, match=r"mask_id must lie in \[0, vocab_size=5\)"):
        jd.d3pm_process("absorbing", vocab_size=5, num_steps=10, mask_id=5)
    with pytest.raises(ValueError, match="mask_id is only for the absorbing"):
        jd.d3pm_process("uniform", vocab_size=5, num_steps=10, mask_id=4)
    with pytest.raises(ValueError, match="cosine"):
        jd.d3pm_process("absorbing", vocab_size=5, num_steps=10, mask_id=4, schedule="cosine")
    with pytest.raises(ValueError, match="num_steps must be an int >= 1"):
        jd.d3pm_process("uniform", vocab_size=5, num_steps=0)
    with pytest.raises(ValueError, match="vocab_size must be an int >= 2"):
        jd.masked_process(vocab_size=1, mask_id=0)
    with pytest.raises(ValueError, match="marginal is only used"):
        jd.d3pm_process("uniform", vocab_size=3, num_steps=10, marginal=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="marginal must be a probability vector"):
        jd.d3pm_process("uniform", vocab_size=3, num_steps=10, schedule="mutual_information",
                        marginal=[0.2, 0.3])
    with pytest.raises(ValueError, match="marginal must be 0 at mask_id"):
        jd.d3pm_process("absorbing", vocab_size=3, num_steps=10, mask_id=2,
                        schedule="mutual_information", marginal=[0.2, 0.3, 0.5])


def test_token_ids_out_of_range_or_mask_in_clean_data():
    with pytest.raises(ValueError, match=r"x0 holds token ids in \[1, 5\], outside the vocab"):
        jd.q_sample(KEY, ABSORBING, X0.at[0, 0].set(5), T_INT)
    with pytest.raises(ValueError, match=r"x0 holds token ids in \[-1, 3\]"):
        jd.d3pm_loss(KEY, _fn(5), ABSORBING, X0.at[0, 0].set(-1))
    with pytest.raises(ValueError, match="x0 contains the \\[MASK\\] id 4"):
        jd.masked_diffusion_loss(KEY, _fn(5), MASKED, X0.at[1, 1].set(4))
    with pytest.raises(ValueError, match="x_t holds token ids"):
        jd.q_posterior_logits(UNIFORM, X0, X0.at[0, 0].set(4), T_INT)
    with pytest.raises(ValueError, match="inpaint_values holds the \\[MASK\\] id 4 at a known"):
        jd.masked_sample(KEY, _fn(5), MASKED, (2, 3), num_steps=2,
                         inpaint_mask=jnp.ones((2, 3), bool),
                         inpaint_values=jnp.full((2, 3), 4, jnp.int32))


def test_wrong_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"x0 must be token ids of shape \[B, L\]"):
        jd.d3pm_loss(KEY, _fn(5), ABSORBING, X0[0])
    with pytest.raises(TypeError, match="x0 must hold integer token ids"):
        jd.q_probs(UNIFORM, X0.astype(jnp.float32), T_INT)
    with pytest.raises(ValueError, match=r"t must have shape \[B\]"):
        jd.q_probs(UNIFORM, X0, T_INT[:1])
    with pytest.raises(ValueError, match=r"t must lie in \[0, 10\)"):
        jd.q_sample(KEY, UNIFORM, X0, T_INT + 1)
    with pytest.raises(TypeError, match="t must be floating"):
        jd.masked_diffusion_loss(KEY, _fn(5), MASKED, X0, t=T_INT)
    with pytest.raises(ValueError, match=r"x_t must have shape \(2, 3\)"):
        jd.q_posterior_logits(UNIFORM, X0, X0[:, :2], T_INT)
    with pytest.raises(ValueError, match=r"x0_logits must have shape \[B, L, V\] = \(2, 3, 4\)"):
        jd.p_posterior_logits(UNIFORM, jnp.zeros((2, 3, 5)), X0, T_INT)
    with pytest.raises(ValueError, match=r"denoise_fn output must have shape \[B, L, V\]"):
        jd.d3pm_loss(KEY, _fn(4), ABSORBING, X0)
    with pytest.raises(ValueError, match=r"shape must be a pair of positive ints"):
        jd.masked_sample(KEY, _fn(5), MASKED, (2, 3, 1), num_steps=2)
    with pytest.raises(ValueError, match=r"num_steps must be <= the process's T = 10"):
        jd.d3pm_sample(KEY, _fn(5), ABSORBING, (2, 3), num_steps=11)
    with pytest.raises(ValueError, match="inpaint_mask and inpaint_values must be given"):
        jd.d3pm_sample(KEY, _fn(5), ABSORBING, (2, 3), inpaint_mask=jnp.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"inpaint_mask must have shape \(2, 3\)"):
        jd.masked_sample(KEY, _fn(5), MASKED, (2, 3), num_steps=2,
                         inpaint_mask=jnp.ones((2, 4), bool),
                         inpaint_values=jnp.zeros((2, 4), jnp.int32))
    with pytest.raises(ValueError, match="cond leaves must have batch size 2"):
        jd.masked_diffusion_loss(KEY, _fn(5), MASKED, X0, cond=jnp.zeros((3,)))


def test_wrong_process_type():
    with pytest.raises(TypeError, match="process must be a D3PMProcess"):
        jd.d3pm_loss(KEY, _fn(5), MASKED, X0)
    with pytest.raises(TypeError, match="process must be a MaskedProcess"):
        jd.masked_sample(KEY, _fn(5), ABSORBING, (2, 3), num_steps=2)


def test_value_checks_are_skipped_under_jit_but_shapes_are_not():
    # Under jit only static facts can be checked; the ids are traced.
    out = jax.jit(lambda x: jd.q_sample(KEY, UNIFORM, x, T_INT))(X0)
    assert out.shape == X0.shape
    with pytest.raises(ValueError, match=r"t must have shape \[B\]"):
        jax.jit(lambda x: jd.q_sample(KEY, UNIFORM, x, T_INT[:1]))(X0)
    assert np.asarray(out).max() < UNIFORM.vocab_size


def test_check_int_is_the_one_int_check():
    assert check_int("n", np.int64(3)) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", None, optional=True) is None
    assert check_int("seed", 0, 0) == 0
    for bad in (0, True, 2.0, None, "3"):
        with pytest.raises(ValueError, match=r"n must be an int >= 1, got"):
            check_int("n", bad)


def test_reverse_log_probs_checks_its_arguments():
    log_p = jnp.zeros((2, 3, 5))
    k = jnp.asarray([3, 10], jnp.int32)
    with pytest.raises(ValueError, match=r"log_p_x0 must have shape \[B, L, V\]"):
        jd.reverse_log_probs(ABSORBING, log_p[..., :4], X0, k, k - 1)
    with pytest.raises(ValueError, match=r"k_from must lie in \[0, 11\)"):
        jd.reverse_log_probs(ABSORBING, log_p, X0, k + 1, k - 1)
