"""Rectified flow on CIFAR-10 (Liu et al. 2023; SD3's training recipe, Esser et al. 2024).

Command: ``python experiments/train.py --config experiments/configs/flow_cifar10.py
--workdir workdirs/flow_cifar10`` on a GPU/TPU host with CIFAR-10 prepared by tfds
(``tfds:cifar10``). Process ``flow``: the rectified-flow path x_t = (1 - t) x0 + t eps,
velocity prediction, SD3's logit-normal(0, 1) times, Euler sampling. The network and the
optimisation are DDPM's CIFAR-10 ones (the ``ddpm_cifar10`` preset, batch 128, lr 2e-4,
800k steps), so that the run compares the processes on one budget with
``ddpm_cifar10.py``. Expected: Liu et al. 2023 (their DDPM++ network, 1-rectified flow)
report FID 2.58 and IS 9.60 with an adaptive RK45 solver (~127 NFE); with a few Euler steps
1-rectified flow is much worse until reflow straightens it. Measure FID on 50k samples
against the CIFAR-10 train statistics with ``experiments/evaluate.py``.
"""

import ml_collections

from jaxdiff import train


def get_config() -> ml_collections.ConfigDict:
    return train.config_dict({
        "data": {"name": "tfds:cifar10", "image_size": None, "conditional": False},
        "model": {"preset": "ddpm_cifar10", "overrides": {}},
        "diffusion": {"process": "flow", "schedule": "rectified_flow"},
        "optim": {"learning_rate": 2e-4, "warmup_steps": 5000, "ema_decay": 0.9999,
                  "clip_norm": 1.0},
        "train": {"batch_size": 128, "num_steps": 800_000, "checkpoint_every": 10_000,
                  "log_every": 100, "eval_every": 10_000, "sample_every": 50_000,
                  "sample_count": 64, "sampler": "euler", "sample_steps": 100},
    })
