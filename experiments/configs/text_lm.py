r"""Subword language modelling at the papers' scale (LM1B, OpenWebText) for GPU/TPU.

Command: first tokenise the corpus with the paper's tokenizer (nothing is downloaded here:
the user provides the tokenizer file and the text), e.g. for OpenWebText
``python experiments/tokenize_corpus.py --tokenizer gpt2/tokenizer.json --train owt_train.txt
--validation owt_valid.txt --separator "<|endoftext|>" --out data/owt_gpt2``, then
``python experiments/train.py --config experiments/configs/text_lm.py:NAME
--workdir workdirs/NAME --config.data.path=data/owt_gpt2
--config.data.tokenizer=gpt2/tokenizer.json``. NAME is ``<model>_<corpus>`` with model
``bd3lm_block4`` / ``bd3lm_block8`` / ``bd3lm_block16`` (block diffusion, BD3-LM),
``mdlm`` (masked diffusion, log-linear, no time conditioning), ``sedd`` (SEDD absorbing) or
``ar`` (the causal baseline), and corpus ``lm1b`` (bert-base-uncased's tokenizer.json,
128-token windows; LM1B has a train and a test file: pass the test sentences as
``--validation``) or ``owt`` (gpt2's tokenizer.json, 1024-token windows).

Model: the 12-block, 768-wide, 12-head transformer of MDLM / BD3-LM ("small", ~110M
parameters with GPT-2's vocabulary), dropout 0.1. Optimisation as theirs: global batch 512,
1M steps (65B tokens on LM1B, 524B on OWT), AdamW lr 3e-4 with 2500 warmup steps, EMA
0.9999, gradient clipping 1.0 (jaxdiff decays the rate by a cosine after warmup; the papers
keep it constant). Held-out metric: the perplexity bound per token, ``eval_ppl`` in
``metrics.jsonl`` (the papers evaluate the whole validation set; ``train.eval_batches`` of
512 windows here). BD3-LM fine-tunes its block models from an MDLM checkpoint after 850K
steps; training from scratch, as here, is the paper's ablation.
Hardware and time: 8 A100 / H100 or a TPU v4-8 for days (not run here: this project's
machine has no accelerator).

Expected test perplexity (bounds for diffusion, exact for AR), :data:`EXPECTED_PPL`:
LM1B (BD3-LM Table 1): AR 22.83, MDLM <= 31.78, BD3-LM block 4 <= 28.23; OWT (MDLM Table 2,
BD3-LM Table 3): AR 17.54, SEDD <= 24.10, MDLM <= 23.21 (22.98 in BD3-LM's run), BD3-LM
block 4 <= 20.73.
"""

import ml_collections

from jaxdiff import train

CORPORA = {"lm1b": 128, "owt": 1024}            # corpus -> window length in tokens
MODELS = ("bd3lm_block4", "bd3lm_block8", "bd3lm_block16", "mdlm", "sedd", "ar")
EXPECTED_PPL = {"ar_lm1b": 22.83, "mdlm_lm1b": 31.78, "bd3lm_block4_lm1b": 28.23,
                "ar_owt": 17.54, "sedd_owt": 24.10, "mdlm_owt": 23.21,
                "bd3lm_block4_owt": 20.73}
"""The papers' numbers for the configs that have one (the others are not reported there)."""
_PROCESSES = {"mdlm": ("masked", "loglinear"), "sedd": ("sedd_absorbing", None),
             "ar": ("autoregressive", None)}


def _split(name: str) -> tuple[str, str]:
    model, _, corpus = name.rpartition("_")
    if model not in MODELS or corpus not in CORPORA:
        raise ValueError(f"name must be <model>_<corpus> with model one of {list(MODELS)} "
                         f"and corpus one of {list(CORPORA)}, got {name!r}")
    return model, corpus


def get_config(name: str = "bd3lm_block4_lm1b") -> ml_collections.ConfigDict:
    model, corpus = _split(name)
    if model.startswith("bd3lm_block"):
        process, schedule = "block", "loglinear"
        settings = {"block_size": int(model[len("bd3lm_block"):])}
    else:
        (process, schedule), settings = _PROCESSES[model], {}
    if process == "masked":
        settings["time_conditioning"] = False     # MDLM's denoiser reads no time
    # diffusion: 1000 unmasking steps; block diffusion: one token per step on average
    steps = {"autoregressive": None, "block": settings.get("block_size")}.get(process, 1000)
    tokenizer = "bert-base-uncased" if corpus == "lm1b" else "gpt2"
    return train.config_dict({
        "data": {"name": "tokens", "seq_len": CORPORA[corpus], "path": None,
                 "tokenizer": f"REQUIRED: {tokenizer}'s tokenizer.json "
                              f"(--config.data.tokenizer)"},
        "model": {"preset": "text_tiny",
                  "overrides": {"hidden_size": 768, "depth": 12, "num_heads": 12,
                                "cond_dim": 128, "frequency_dim": 256, "dropout": 0.1}},
        "diffusion": {"process": process, "schedule": schedule, **settings},
        "optim": {"learning_rate": 3e-4, "warmup_steps": 2500, "ema_decay": 0.9999,
                  "weight_decay": 0.0, "clip_norm": 1.0},
        "train": {"batch_size": 512, "num_steps": 1_000_000, "checkpoint_every": 10_000,
                  "log_every": 1000, "eval_every": 10_000, "eval_batches": 16,
                  "sample_count": 16, "distributed": False,
                  "sample_steps": steps},
    })
