"""EDM training on CIFAR-10 (Karras et al. 2022, config F of Table 2 without augmentation).

Command: ``python experiments/train.py --config experiments/configs/edm_cifar10.py
--workdir workdirs/edm_cifar10`` on a GPU/TPU host with CIFAR-10 prepared by tfds
(``tfds:cifar10``). Process ``edm``: EDM's preconditioning with sigma_data = 0.5,
ln(sigma) ~ N(-1.2, 1.2^2), the EDM loss weight, Heun on the rho = 7 grid (18 steps, 35 NFE).
Optimisation as EDM's CIFAR-10 runs: Adam, lr 1e-3 with a linear warmup over 10M images
(~19.5k steps at batch 512), batch 512, 200M images (~390k steps), dropout 0.13.
What differs from the paper, so expect a worse number: the network is jaxdiff's
DDPM UNet (the ``ddpm_cifar10`` preset, 35.7M parameters) rather than DDPM++ (56M), the EMA
is a fixed decay (0.99929: EDM's half-life of 0.5M images, 977 steps at batch 512) rather than
EDM's ramped half-life, and there is no non-leaky augmentation (EDM's 1.97 uses it).
Expected: FID 1.97
(unconditional) / 1.79 (class-conditional, ``--config.data.conditional=True``) at 35 NFE in
the paper, on 50k samples against the CIFAR-10 train statistics.
"""

import ml_collections

from jaxdiff import train


def get_config() -> ml_collections.ConfigDict:
    return train.config_dict({
        "data": {"name": "tfds:cifar10", "image_size": None, "conditional": False},
        "model": {"preset": "ddpm_cifar10", "overrides": {"dropout": 0.13}},
        "diffusion": {"process": "edm"},
        "optim": {"learning_rate": 1e-3, "warmup_steps": 19_531, "ema_decay": 0.99929,
                  "clip_norm": 1.0},
        "train": {"batch_size": 512, "num_steps": 390_625, "checkpoint_every": 10_000,
                  "log_every": 100, "eval_every": 10_000, "sample_every": 50_000,
                  "sample_count": 64, "sampler": "heun", "sample_steps": 18},
    })
