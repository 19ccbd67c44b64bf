"""DDPM on CIFAR-10 (Ho et al. 2020): the 35.7M-parameter UNet, batch 128, lr 2e-4, 800k steps.

Command: ``python experiments/train.py --config experiments/configs/ddpm_cifar10.py
--workdir workdirs/ddpm_cifar10`` on a GPU/TPU host with CIFAR-10 prepared by tfds
(``tfds:cifar10``; downloads once on a machine that is online). Hardware: the paper used a
TPU v3-8 for 10.6 hours per 800k steps... (21 steps/s); expect several days on one GPU.
Expected: FID 3.17 and IS 9.46 on 50k samples with the EMA parameters and 1000 ancestral
steps (Ho et al. 2020, Table 1), and NLL <= 3.75 bits/dim (the paper's test-set bound with
L_simple).
"""

import ml_collections

from jaxdiff import train


def get_config() -> ml_collections.ConfigDict:
    return train.config_dict({
        "data": {"name": "tfds:cifar10", "image_size": None, "conditional": False},
        "model": {"preset": "ddpm_cifar10", "overrides": {}},
        "diffusion": {"schedule": "linear", "num_steps": 1000, "prediction": "eps"},
        # Ho et al.: Adam, lr 2e-4, warmup 5000 steps, grad clip 1.0, EMA 0.9999, no decay
        # (the cosine decay here ends far beyond the run: total_steps is the run's length).
        "optim": {"learning_rate": 2e-4, "warmup_steps": 5000, "ema_decay": 0.9999,
                  "clip_norm": 1.0},
        "train": {"batch_size": 128, "num_steps": 800_000, "checkpoint_every": 10_000,
                  "log_every": 100, "eval_every": 10_000, "sample_every": 50_000,
                  "sample_count": 64, "sampler": "ddpm", "sample_steps": 1000},
    })
