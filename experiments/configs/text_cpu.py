"""Character-level text on the embedded corpus at CPU scale, one config per process.

Command: ``python experiments/train.py --config experiments/configs/text_cpu.py:PROCESS
--workdir workdirs/text_cpu_PROCESS`` with PROCESS one of ``absorbing``, ``uniform`` (D3PM,
Austin et al. 2021), ``masked`` (continuous-time masked diffusion, MDLM / MD4) or
``autoregressive`` (the causal baseline), ``sedd_absorbing`` / ``sedd_uniform`` (SEDD), or
``block_K`` (block diffusion, BD3-LM, with blocks of K characters, K dividing 256; e.g.
``block_4``), or ``masked_conditional`` (masked diffusion conditioned on the article group of
each window, 4 groups, labels dropped at 0.1 for classifier-free guidance; claim 21); any
of them with the suffix ``_bpe`` (e.g. ``masked_bpe``) trains on BPE tokens instead of
characters (a 512-token BPE trained on the training split, 256-token windows; claim 22).
Hardware: 2 CPU cores. Data: the
gensim wheel's Wikipedia pages, text8-normalised (``enwiki_gensim``, 2.74M training
characters), random 256-character windows. Model: the same 4-block, 128-wide transformer
(1.26M parameters) for every process, bidirectional with adaLN time conditioning for
diffusion, causal without it for the baseline, block-causal without it for block diffusion
(BD3-LM's); batch 16, 500 steps (2M characters), AdamW with warmup and cosine decay, EMA 0.99.
Expected: held-out ``eval_bpc`` ordered autoregressive < masked ~ absorbing < uniform, the
papers' order on text8 (AR 1.23, MD4 <= 1.37, D3PM absorbing <= 1.45, uniform <= 1.61),
and block diffusion between AR (block 1) and masked diffusion (block 256), monotone in K
(BD3-LM); the measured values are in ``experiments/RESULTS.md`` (claims 8, 9 and 19).
"""

import ml_collections

from jaxdiff import train

SCHEDULES = {"absorbing": "reciprocal", "uniform": "cosine", "masked": "loglinear",
             "block": "loglinear", "sedd_absorbing": "loglinear", "sedd_uniform": "geometric",
             "autoregressive": None}   # the autoregressive baseline has none
D3PM_SETTINGS = {"num_steps": 1000, "hybrid_coeff": 0.01}   # D3PM's T and lambda


def _block_size(process: str) -> int | None:
    """K of ``block_K``; None for the other processes."""
    if not process.startswith("block_"):
        return None
    size = process[len("block_"):]
    if not size.isdigit() or int(size) < 1 or 256 % int(size):
        raise ValueError(f"block_K needs K dividing 256, got {process!r}")
    return int(size)


CONDITIONAL = "masked_conditional"
ARTICLE_GROUPS = 4
BPE_SUFFIX = "_bpe"
BPE_VOCAB_SIZE = 512


def get_config(process: str = "absorbing") -> ml_collections.ConfigDict:
    bpe = process.endswith(BPE_SUFFIX)
    if bpe:
        process = process[:-len(BPE_SUFFIX)]
    block_size = _block_size(process)
    conditional = process == CONDITIONAL
    if conditional:
        process = "masked"
    if block_size is not None:
        process = "block"
    elif process not in SCHEDULES:
        raise ValueError(f"process must be one of {sorted(SCHEDULES)}, {CONDITIONAL!r} or "
                         f"block_K (each optionally with {BPE_SUFFIX!r}), got {process!r}")
    process_settings = {**(D3PM_SETTINGS if process in ("absorbing", "uniform") else {}),
                        **({"block_size": block_size} if block_size else {})}
    return train.config_dict({
        "data": {"name": "enwiki_gensim", "seq_len": 256, "conditional": conditional,
                 "article_groups": ARTICLE_GROUPS, "tokenizer": "bpe" if bpe else "chars",
                 "vocab_size": BPE_VOCAB_SIZE if bpe else None},
        "model": {"preset": "text_tiny",
                  "overrides": {"hidden_size": 128, "depth": 4, "num_heads": 4,
                                "cond_dim": 128, "frequency_dim": 128, "dropout": 0.0}},
        "diffusion": {"process": process, "schedule": SCHEDULES[process],
                      **process_settings},
        "optim": {"learning_rate": 2e-3, "warmup_steps": 50, "ema_decay": 0.99,
                  "weight_decay": 0.0},
        "train": {"batch_size": 16, "num_steps": 500, "checkpoint_every": 250,
                  # the validation split holds 226 rows of 256 BPE tokens
                  "log_every": 25, "eval_every": 250, "eval_batches": 14 if bpe else 16,
                  "sample_count": 8,
                  # the AR baseline samples in seq_len steps by construction; block
                  # diffusion in K steps per block (256 in all, as the others)
                  "sample_steps": (None if process == "autoregressive" else
                                   block_size or 256)},
    })
