"""Tokenises text files into a pre-tokenised corpus for ``data.name="tokens"``:
``python experiments/tokenize_corpus.py --tokenizer gpt2/tokenizer.json --train train.txt
--validation valid.txt [--test test.txt] [--separator "<|endoftext|>"] --out DIR``.

Each input file holds one document per line (LM1B: a sentence; OpenWebText: a document with
its newlines escaped); each document's tokens are followed by ``--separator``'s id when one
is given (GPT-2's ``<|endoftext|>``, BERT's ``[SEP]``), and the documents of a split are
concatenated into ``DIR/<split>.npy`` (``uint16`` when the vocabulary fits, else
``int32``; :func:`jaxdiff.data.subword.write_token_corpus`). The papers' "wrapped" training
reads random windows of that stream. Files are read and written in chunks of ``--chunk``
lines, so a corpus larger than memory works; the tokenizer file is the one the config's
``data.tokenizer`` names.
"""

import pathlib

from absl import app, flags

from jaxdiff.data import subword

_TOKENIZER = flags.DEFINE_string("tokenizer", None, "a tokenizer.json", required=True)
_TRAIN = flags.DEFINE_string("train", None, "training documents, one per line", required=True)
_VALIDATION = flags.DEFINE_string("validation", None, "validation documents", required=True)
_TEST = flags.DEFINE_string("test", None, "test documents (optional)")
_SEPARATOR = flags.DEFINE_string("separator", None, "a token of the tokenizer appended to "
                                                    "every document ('<|endoftext|>', '[SEP]')")
_OUT = flags.DEFINE_string("out", None, "the corpus directory to write", required=True)
_CHUNK = flags.DEFINE_integer("chunk", 10_000, "lines per batch")


def main(argv):
    del argv
    splits = {"train": _TRAIN.value, "validation": _VALIDATION.value, "test": _TEST.value}
    counts = subword.write_token_corpus(_TOKENIZER.value,
                                        {k: v for k, v in splits.items() if v}, _OUT.value,
                                        separator=_SEPARATOR.value, chunk=_CHUNK.value)
    for split, count in counts.items():
        print(f"{split}: {count} tokens -> {pathlib.Path(_OUT.value) / f'{split}.npy'}")


if __name__ == "__main__":
    app.run(main)
