"""The character tokenizer and text-level inpainting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import discrete as jd

TOKENIZER = jd.CharTokenizer()


def test_tokenizer_is_text8_plus_mask():
    assert TOKENIZER.vocab_size == 28 and TOKENIZER.mask_id == 27
    ids = TOKENIZER.encode("The [MASK] z")
    np.testing.assert_array_equal(ids, [19, 7, 4, 26, 27, 26, 25])
    assert ids.dtype == np.int32
    assert TOKENIZER.decode(ids) == "the [MASK] z"


def test_expand_template_spans():
    ids = jd.expand_template("ab[MASK]c[MASK]", 3, TOKENIZER)
    np.testing.assert_array_equal(ids, [0, 1, 27, 27, 27, 2, 27, 27, 27])
    ids = jd.expand_template("[MASK] b [MASK]", [2, 1], TOKENIZER)
    assert TOKENIZER.decode(ids) == "[MASK][MASK] b [MASK]"


@pytest.fixture(scope="module")
def prefers_q():
    """A denoiser that puts almost all mass on 'q' everywhere (so fills are predictable)."""
    logits = jnp.full((28,), -20.0).at[TOKENIZER.encode("q")[0]].set(20.0)
    return lambda x, t, cond=None: jnp.broadcast_to(logits, x.shape + (28,))


@pytest.mark.parametrize("kind", ["masked", "absorbing"])
def test_inpaint_text_fills_spans_and_keeps_the_rest(kind, prefers_q):
    if kind == "masked":
        process = jd.masked_process("loglinear", vocab_size=28, mask_id=27)
    else:
        process = jd.d3pm_process("absorbing", vocab_size=28, num_steps=8, mask_id=27)
    out = jd.inpaint_text(jax.random.key(0), prefers_q, process, "The [MASK] sat on the [MASK]",
                          mask_length=[3, 2], num_steps=8, num_samples=2)
    assert out == ["the qqq sat on the qq"] * 2


def test_inpaint_text_rejects_bad_input(prefers_q):
    masked = jd.masked_process("loglinear", vocab_size=28, mask_id=27)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="mask_length has 1 lengths but the template has 2"):
        jd.inpaint_text(key, prefers_q, masked, "[MASK] a [MASK]", mask_length=[2],
                        num_steps=4)
    with pytest.raises(ValueError, match="mask_length must be an int >= 1"):
        jd.inpaint_text(key, prefers_q, masked, "a [MASK]", mask_length=0, num_steps=4)
    uniform = jd.d3pm_process("uniform", vocab_size=28, num_steps=4)
    with pytest.raises(ValueError, match="masked or absorbing"):
        jd.inpaint_text(key, prefers_q, uniform, "a [MASK]", mask_length=2)
    other = jd.masked_process("loglinear", vocab_size=30, mask_id=29)
    with pytest.raises(ValueError, match="does not match the tokenizer"):
        jd.inpaint_text(key, prefers_q, other, "a [MASK]", mask_length=2, num_steps=4)
    with pytest.raises(ValueError, match="num_steps is required"):
        jd.inpaint_text(key, prefers_q, masked, "a [MASK]", mask_length=2)


def test_tokenizer_rejects_bad_input():
    with pytest.raises(ValueError, match=r"'!' at position 5"):
        TOKENIZER.encode("hello!")
    with pytest.raises(TypeError, match="text must be a str"):
        TOKENIZER.encode(b"abc")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 28\)"):
        TOKENIZER.decode(np.array([0, 28]))
    with pytest.raises(ValueError, match="distinct"):
        jd.CharTokenizer("aa")
