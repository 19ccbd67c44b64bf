"""Subword tokens: the BPE trained offline on the corpus (exact round trips, determinism,
[MASK]), a provided tokenizer.json with its own [MASK], corpus token streams and their
characters per token, and BPE runs of every text process in the loop."""

import json

import jax
import numpy as np
import pytest

from jaxdiff import chars, data, tasks, train
from jaxdiff.data import subword
from tests.train.util import TINY_TEXT, tiny_config

TEXT = ("anarchism is a political philosophy that advocates self governed societies "
        "based on voluntary institutions ") * 20


@pytest.fixture(scope="module")
def bpe():
    return subword.train_bpe(TEXT, 60, name="test-bpe")


def test_training_is_deterministic_and_sized(bpe):
    again = subword.train_bpe(TEXT, 60, name="test-bpe")
    assert again.json == bpe.json
    assert (bpe.data_vocab_size, bpe.vocab_size, bpe.mask_id) == (60, 61, 60)
    assert len(bpe.encode(TEXT)) < 0.6 * len(TEXT)        # 33 merges shorten the text


@pytest.mark.parametrize("text", ["the cat sat", " leading and trailing  spaces ", "z",
                                  "qxj zzz vocabulary never seen", ""])
def test_decoding_inverts_encoding_exactly(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_random_text_over_the_alphabet_round_trips(bpe):
    rng = np.random.default_rng(0)
    text = chars.decode(rng.integers(0, 27, 500))
    assert bpe.decode(bpe.encode(text)) == text


def test_mask_is_the_id_after_the_vocabulary_and_round_trips(bpe):
    ids = bpe.encode("the [MASK] sat on [MASK]")
    assert np.sum(ids == bpe.mask_id) == 2
    assert bpe.decode(ids) == "the [MASK] sat on [MASK]"
    known, values = tasks.text.template_inpainting("the [MASK] sat", mask_length=3, count=2,
                                                   tokenizer=bpe)
    assert known.shape == values.shape and (~known[0]).sum() == 3


def test_characters_outside_the_alphabet_are_named(bpe):
    with pytest.raises(ValueError, match=r"cannot encode: \['!', 'H'\]"):
        bpe.encode("Hello!")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 61\)"):
        bpe.decode(np.array([61]))


def test_a_tokenizer_file_with_its_own_mask_keeps_its_id(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "the": 3, "cat": 4}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer.to_str())
    loaded = subword.load_tokenizer_file(path)
    assert (loaded.vocab_size, loaded.mask_id) == (5, 2)
    np.testing.assert_array_equal(loaded.encode("the [MASK] cat"), [3, 2, 4])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        subword.load_tokenizer_file(tmp_path / "missing.json")


def test_corpus_tokens_are_cached_and_measure_characters_per_token(tmp_path):
    ids = data.load_text_corpus("enwiki_gensim", "validation")[:20_000]
    tokenizer = subword.corpus_bpe(ids, 100, corpus="piece", cache=tmp_path)
    tokens = subword.encode_corpus(ids, tokenizer, cache=tmp_path)
    assert tokenizer.decode(tokens) == chars.decode(ids)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npy"]
    np.testing.assert_array_equal(subword.encode_corpus(ids, tokenizer, cache=tmp_path), tokens)
    assert subword.characters_per_token(ids, tokens) == pytest.approx(len(ids) / len(tokens))
    assert subword.corpus_bpe(ids, 100, corpus="piece", cache=tmp_path).json == tokenizer.json


@pytest.mark.parametrize("sections, match", [
    ({"data": {"vocab_size": 100}}, "data.vocab_size: sizes the trained BPE"),
    ({"data": {"tokenizer": "bpe", "vocab_size": 10}}, "data.vocab_size: must be an int >= 27"),
    ({"data": {"tokenizer": "gpt2"}}, "data.tokenizer: must be 'chars', 'bpe' or an existing"),
    ({"data": {"tokenizer": "bpe", "conditional": True}},
     "data.conditional: article groups label characters"),
])
def test_bad_tokenizer_configs_are_named(sections, match):
    with pytest.raises(ValueError, match=match):
        train.validate(tiny_config(TINY_TEXT, **sections), num_devices=1)


def test_a_bpe_run_logs_bits_per_character_through_its_characters_per_token(tmp_path):
    config = tiny_config(TINY_TEXT, data={"tokenizer": "bpe", "vocab_size": 64})
    train.train(config, tmp_path)
    run, state = train.restore_workdir(tmp_path)
    assert run.model_config.vocab_size == 65 and run.process.mask_id == 64
    ratio = tasks.text.characters_per_token(run.config, "validation")
    assert 1.2 < ratio < 2.5
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    held_out = [row for row in rows if "eval_bpc" in row][-1]
    assert held_out["eval_bpc"] == pytest.approx(held_out["eval_loss"]
                                                 / (16 * ratio * np.log(2)))
    samples = np.asarray(train.make_sampler(run, count=2, num_steps=4)(jax.random.key(0),
                                                                       state.ema_params))
    assert samples.shape == (2, 16) and samples.max() < 64
    text = tasks.text.text_tokenizer(run.config).decode(samples[0])
    assert set(text) <= set(chars.TEXT8_ALPHABET) and len(text) > 16


@pytest.mark.parametrize("process, schedule, vocab, mask_id", [
    ("masked", "loglinear", 65, 64), ("block", "loglinear", 65, 64),
    ("absorbing", "reciprocal", 65, 64), ("uniform", "cosine", 64, None),
    ("sedd_absorbing", None, 65, 64), ("sedd_uniform", None, 64, None),
    ("autoregressive", None, 65, None)])
def test_every_text_process_reads_its_vocabulary_from_the_bpe(process, schedule, vocab,
                                                               mask_id):
    steps = {"train": {"sample_steps": None}} if process == "autoregressive" else {}
    config = tiny_config(TINY_TEXT, data={"tokenizer": "bpe", "vocab_size": 64},
                         diffusion={"process": process, "schedule": schedule}, **steps)
    run = train.build_run(config)
    assert run.model_config.vocab_size == vocab
    assert getattr(run.process, "mask_id", None) == mask_id
    assert int(run.dataset.max()) < 64 and run.eval_dataset.shape[1] == 16
