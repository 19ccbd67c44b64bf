"""VDM-style likelihood training on CIFAR-10 (Kingma et al. 2021), on the fixed schedule.

Command: ``python experiments/train.py --config experiments/configs/vdm_cifar10.py
--workdir workdirs/vdm_cifar10`` on a GPU/TPU host with CIFAR-10 prepared by tfds
(``tfds:cifar10``). Process ``flow`` on VDM's fixed schedule (``vp_log_linear``: the
log-SNR linear in t from 13.3 to -5), eps prediction, the ``likelihood`` weighting with
uniform times: the objective is VDM's continuous diffusion loss L_inf (the prior and
reconstruction terms have no gradient on a fixed schedule). What differs from the paper:
VDM's 2.65 bits/dim (test set, no augmentation) uses its learned log-SNR schedule and a
32-block UNet without downsampling, with Fourier features of the input; this config uses
the fixed schedule and jaxdiff's DDPM UNet (``ddpm_cifar10``), so expect a higher number.
``experiments/evaluate.py`` reports the probability-flow ODE estimate and VDM's bound beside
it (``bits_per_dim_continuous_bound``). VDM's learned schedule is a library option
(``jaxdiff.gaussian.learned_path``), not yet a training-loop one.
"""

import ml_collections

from jaxdiff import train


def get_config() -> ml_collections.ConfigDict:
    return train.config_dict({
        "data": {"name": "tfds:cifar10", "image_size": None, "conditional": False},
        "model": {"preset": "ddpm_cifar10", "overrides": {"dropout": 0.1}},
        "diffusion": {"process": "flow", "schedule": "vp_log_linear", "prediction": "eps",
                      "weighting": "likelihood", "time_density": "uniform"},
        "optim": {"learning_rate": 2e-4, "warmup_steps": 5000, "ema_decay": 0.9999,
                  "clip_norm": 1.0},
        "train": {"batch_size": 128, "num_steps": 2_000_000, "checkpoint_every": 10_000,
                  "log_every": 100, "eval_every": 10_000, "sample_every": 50_000,
                  "sample_count": 64, "sampler": "heun", "sample_steps": 50},
    })
