"""text8 at paper scale for GPU/TPU, one config per process.

Command: ``python experiments/train.py --config experiments/configs/text8.py:PROCESS
--workdir workdirs/text8_PROCESS --config.data.path=/path/to/text8.zip`` with PROCESS one
of ``absorbing``, ``uniform``, ``masked``, ``autoregressive``; then
``python experiments/evaluate.py --workdir workdirs/text8_PROCESS`` for the test-set bound.
Data: Mahoney's text8 (100M characters, 90M/5M/5M split; TFDS has no text8 builder, so the
file is read from ``data.path``), random 256-character windows (D3PM's text8 setup).
Model: a 12-block, 768-wide transformer (the ``TextTransformer`` defaults; 92.4M
parameters with adaLN, fewer for the causal baseline) for every process. Optimisation
(our setting, close to the papers'): batch 512, 1M steps, AdamW lr 3e-4 with 5000 warmup
steps and cosine decay, EMA 0.9999.
Schedules: each process's default (the first of ``jaxdiff.tasks.TASKS[process].schedules``):
D3PM's 1/(T-t+1)
for absorbing, cosine for uniform, log-linear for masked diffusion.
Hardware and time: a TPU v3-8 / 8 GPUs for several days (not run here: this project's
machine has no accelerator).
Expected test bits per character (bounds for diffusion, exact for AR):
absorbing D3PM <= 1.45 and uniform D3PM <= 1.61 (Austin et al. 2021, text8 table, T = 1000,
hybrid loss lambda = 0.01), masked diffusion <= 1.37 (MD4, Shi et al. 2024), and the
autoregressive transformer 1.23 (the AR baseline D3PM reports).
"""

import ml_collections

from jaxdiff import train

EXPECTED_BPC = {"absorbing": 1.45, "uniform": 1.61, "masked": 1.37, "autoregressive": 1.23}
D3PM_SETTINGS = {"num_steps": 1000, "hybrid_coeff": 0.01}   # D3PM's T and lambda


def get_config(process: str = "absorbing") -> ml_collections.ConfigDict:
    if process not in EXPECTED_BPC:
        raise ValueError(f"process must be one of {sorted(EXPECTED_BPC)}, got {process!r}")
    return train.config_dict({
        "data": {"name": "text8", "seq_len": 256, "path": None},
        "model": {"preset": "text_tiny",
                  "overrides": {"hidden_size": 768, "depth": 12, "num_heads": 12,
                                "cond_dim": 128, "frequency_dim": 256, "dropout": 0.1}},
        "diffusion": {"process": process,
                      **(D3PM_SETTINGS if process in ("absorbing", "uniform") else {})},
        "optim": {"learning_rate": 3e-4, "warmup_steps": 5000, "ema_decay": 0.9999,
                  "weight_decay": 0.0},
        "train": {"batch_size": 512, "num_steps": 1_000_000, "checkpoint_every": 10_000,
                  "log_every": 100, "eval_every": 10_000, "eval_batches": 32,
                  "sample_count": 16, "distributed": False,
                  # the AR baseline samples in seq_len steps by construction
                  "sample_steps": None if process == "autoregressive" else 1000},
    })
