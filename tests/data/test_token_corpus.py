"""Pre-tokenised corpora (``data.name="tokens"``): ``write_token_corpus`` (the library side of
``experiments/tokenize_corpus.py``) writes
the documents' tokens with separators, a run trains on them and logs the perplexity per
token, and the papers' full-scale configs (``experiments/configs/text_lm.py``) validate."""

import json

import numpy as np
import pytest
from configs import text_lm
from tokenizers import Tokenizer, models, pre_tokenizers

from jaxdiff import train
from jaxdiff.data import subword
from tests.train.util import TINY_TEXT, tiny_config

WORDS = ["[PAD]", "[UNK]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A word-level tokenizer with BERT's specials and a tokenised corpus of it."""
    root = tmp_path_factory.mktemp("corpus")
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)},
                                           unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    (root / "tokenizer.json").write_text(tokenizer.to_str())
    rng = np.random.default_rng(0)
    for split, lines in (("train", 400), ("validation", 120)):
        docs = [" ".join(rng.choice(WORDS[4:], rng.integers(3, 9))) for _ in range(lines)]
        (root / f"{split}.txt").write_text("\n".join(docs) + "\n")
    counts = subword.write_token_corpus(
        root / "tokenizer.json", {"train": root / "train.txt",
                                  "validation": root / "validation.txt"},
        root / "tokens", separator="[SEP]", chunk=7)
    assert set(counts) == {"train", "validation"}
    with pytest.raises(ValueError, match="is not a token"):
        subword.write_token_corpus(root / "tokenizer.json", {}, root, separator="<eos>")
    return root


def test_the_corpus_is_the_documents_tokens_with_separators(corpus):
    tokenizer = subword.load_tokenizer_file(corpus / "tokenizer.json")
    expected = []
    for line in (corpus / "train.txt").read_text().splitlines():
        expected.extend(tokenizer.encode(line).tolist() + [2])
    tokens = np.load(corpus / "tokens" / "train.npy")
    assert tokens.dtype == np.uint16
    np.testing.assert_array_equal(tokens, expected)
    with pytest.raises(FileNotFoundError, match="has no test.npy"):
        subword.load_token_split(corpus / "tokens", "test", vocab_size=11)
    with pytest.raises(ValueError, match=r"outside the tokenizer's \[0, 5\)"):
        subword.load_token_split(corpus / "tokens", "train", vocab_size=5)


def test_a_run_on_a_token_corpus_logs_the_perplexity_per_token(corpus, tmp_path):
    config = tiny_config(TINY_TEXT, data={"name": "tokens", "path": str(corpus / "tokens"),
                                          "tokenizer": str(corpus / "tokenizer.json")})
    train.train(config, tmp_path)
    run, _ = train.restore_workdir(tmp_path)
    assert run.model_config.vocab_size == 11 and run.process.mask_id == 3   # BERT-style
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    held_out = [row for row in rows if "eval_loss" in row][-1]
    assert "eval_bpc" not in held_out
    assert held_out["eval_ppl"] == pytest.approx(np.exp(held_out["eval_loss"] / 16))


@pytest.mark.parametrize("name", ["bd3lm_block4_lm1b", "bd3lm_block16_owt", "mdlm_owt",
                                  "sedd_owt", "ar_lm1b"])
def test_the_full_scale_configs_validate_once_given_their_files(corpus, name):
    values = text_lm.get_config(name).to_dict()
    with pytest.raises(ValueError, match="data.path: must be the directory"):
        train.validate(train.from_dict(values), num_devices=8)
    values["data"].update(path=str(corpus / "tokens"), tokenizer=str(corpus / "tokenizer.json"))
    config = train.from_dict(values)
    train.validate(config, num_devices=8)
    assert config.train.batch_size == 512 and config.data.seq_len in (128, 1024)
    with pytest.raises(ValueError, match="name must be <model>_<corpus>"):
        text_lm.get_config("bd3lm_block4_text8")
