"""Tokenises text files into a pre-tokenised corpus for ``data.name="tokens"``:
``python experiments/tokenize_corpus.py --tokenizer gpt2/tokenizer.json --train train.txt
--validation valid.txt [--test test.txt] [--separator "<|endoftext|>"] --out DIR``.

Each input file holds one document per line (LM1B: a sentence; OpenWebText: a document with
its newlines escaped); each document's tokens are followed by ``--separator``'s id when one
is given (GPT-2's ``<|endoftext|>``, BERT's ``[SEP]``), and the documents of a split are
concatenated into ``DIR/<split>.npy`` (``uint16`` when the vocabulary fits, else
``int32``). The papers' "wrapped" training reads random windows of that stream
(:mod:`jaxdiff.data.subword`). Files are read and written in chunks of ``--chunk`` lines,
so a corpus larger than memory works; the tokenizer file is the one the config's
``data.tokenizer`` names.
"""

import argparse
import itertools
import os
import pathlib

import numpy as np

from jaxdiff.data import subword


def _documents(path: pathlib.Path, chunk: int):
    with open(path, encoding="utf-8") as f:
        while lines := list(itertools.islice(f, chunk)):
            yield [line.rstrip("\n") for line in lines]


def tokenize_file(tokenizer: subword.SubwordTokenizer, text_file: pathlib.Path,
                  out_file: pathlib.Path, *, separator: int | None, chunk: int) -> int:
    """Writes ``out_file`` (.npy) with the tokens of ``text_file``'s documents; returns the
    token count."""
    dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max + 1 else np.int32
    raw = out_file.with_suffix(".raw")
    count = 0
    with open(raw, "wb") as sink:
        for documents in _documents(text_file, chunk):
            for encoding in tokenizer.tokenizer.encode_batch(documents,
                                                            add_special_tokens=False):
                ids = encoding.ids + ([] if separator is None else [separator])
                np.asarray(ids, dtype).tofile(sink)
                count += len(ids)
    if count == 0:
        raw.unlink()
        raise ValueError(f"{text_file} holds no tokens")
    tmp = out_file.with_name(f"{out_file.stem}.tmp{os.getpid()}.npy")
    target = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(count,))
    source = np.memmap(raw, dtype=dtype, mode="r", shape=(count,))
    for start in range(0, count, 1 << 26):
        target[start:start + (1 << 26)] = source[start:start + (1 << 26)]
    target.flush()
    del target, source
    os.replace(tmp, out_file)   # atomic: a reader never sees a partial split
    raw.unlink()
    return count


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="a tokenizer.json")
    parser.add_argument("--train", required=True, help="training documents, one per line")
    parser.add_argument("--validation", required=True, help="validation documents")
    parser.add_argument("--test", help="test documents (optional)")
    parser.add_argument("--separator", help="a token of the tokenizer appended to every "
                                            "document (e.g. '<|endoftext|>', '[SEP]')")
    parser.add_argument("--out", required=True, help="the corpus directory to write")
    parser.add_argument("--chunk", type=int, default=10_000, help="lines per batch")
    args = parser.parse_args(argv)
    tokenizer = subword.load_tokenizer_file(args.tokenizer)
    separator = None
    if args.separator is not None:
        separator = tokenizer.tokenizer.token_to_id(args.separator)
        if separator is None:
            parser.error(f"--separator {args.separator!r} is not a token of {args.tokenizer}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        text_file = getattr(args, split)
        if text_file is None:
            continue
        count = tokenize_file(tokenizer, pathlib.Path(text_file), out / f"{split}.npy",
                              separator=separator, chunk=args.chunk)
        print(f"{split}: {count} tokens -> {out / f'{split}.npy'}")


if __name__ == "__main__":
    main()
