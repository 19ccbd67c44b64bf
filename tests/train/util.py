"""A tiny run config shared by the training tests (8x8 digits, a UNet of ~20k parameters)."""

from jaxdiff import train

TINY = {
    "data": {"name": "digits", "image_size": None},
    "model": {"preset": "unet_tiny",
              "overrides": {"base_channels": 8, "channel_mults": (1, 2), "num_res_blocks": 1,
                            "attention_resolutions": (), "num_groups": 4}},
    "diffusion": {"schedule": "cosine", "num_steps": 100},
    "optim": {"learning_rate": 1e-3, "warmup_steps": 2, "ema_decay": 0.9},
    "train": {"batch_size": 16, "num_steps": 12, "checkpoint_every": 4, "log_every": 4,
              "eval_every": 12, "eval_batches": 1, "sample_count": 8, "sample_steps": 5},
}


def tiny_config(**sections) -> train.ExperimentConfig:
    """``TINY`` with some fields replaced, e.g. ``tiny_config(train={"num_steps": 3})``."""
    values = {k: dict(v) for k, v in TINY.items()}
    for section, fields in sections.items():
        values[section].update(fields)
    return train.from_dict(values)
