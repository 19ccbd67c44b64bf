"""Tiny run configs shared by the training tests: 8x8 digits with a UNet of ~20k
parameters, 16-character windows of the embedded text corpus with a one-block text
transformer, and an autoencoder of 16x16 digits."""

from jaxdiff import tasks, train

TINY = {
    "data": {"name": "digits", "image_size": None},
    "model": {"preset": "unet_tiny",
              "overrides": {"base_channels": 8, "channel_mults": (1, 2), "num_res_blocks": 1,
                            "attention_levels": (), "num_groups": 4}},
    "diffusion": {"schedule": "cosine", "num_steps": 100},
    "optim": {"learning_rate": 1e-3, "warmup_steps": 2, "ema_decay": 0.9},
    "train": {"batch_size": 16, "num_steps": 12, "checkpoint_every": 4, "log_every": 4,
              "eval_every": 12, "eval_batches": 1, "sample_count": 8, "sample_steps": 5},
}

TINY_TEXT = {
    "data": {"name": "enwiki_gensim", "seq_len": 16},
    "model": {"preset": "text_tiny",
              "overrides": {"hidden_size": 16, "depth": 1, "num_heads": 2, "cond_dim": 16,
                            "frequency_dim": 16}},
    "diffusion": {"process": "masked", "schedule": "loglinear", "num_steps": 10},
    "optim": {"learning_rate": 1e-2, "warmup_steps": 2, "ema_decay": 0.5},
    "train": {"batch_size": 16, "num_steps": 4, "checkpoint_every": 2, "log_every": 2,
              "eval_every": 4, "eval_batches": 2, "sample_count": 8, "sample_steps": 4},
}

# 16x16 digits into an 8x8x4 latent: a two-level autoencoder of ~60k parameters
TINY_AE = {
    "data": {"name": "digits", "image_size": 16},
    "model": {"preset": "vae_tiny",
              "overrides": {"base_channels": 8, "channel_mults": (1, 2), "num_groups": 4}},
    "diffusion": {"process": "autoencoder"},
    "optim": {"learning_rate": 2e-3, "warmup_steps": 5, "ema_decay": 0.5},
    "train": {"batch_size": 32, "num_steps": 60, "checkpoint_every": 60, "log_every": 20,
              "eval_every": 60, "eval_batches": 1, "sample_count": 8, "sample_steps": None},
}


def tiny_config(base: dict = TINY, **sections) -> train.ExperimentConfig:
    """``base`` with some fields replaced, e.g. ``tiny_config(train={"num_steps": 3})``. The
    base's short T (``diffusion.num_steps``) is kept for a process that reads one (gaussian,
    D3PM) and left out for the others, where it would be an error."""
    values = {k: dict(v) for k, v in base.items()}
    short_T = values["diffusion"].pop("num_steps", None)
    for section, fields in sections.items():
        values[section].update(fields)
    if "num_steps" in tasks.get_task(values["diffusion"].get("process", "gaussian")).settings:
        values["diffusion"].setdefault("num_steps", short_T)
    return train.from_dict(values)
