"""Text-to-image on CPU: a KL autoencoder and a caption-conditioned latent flow model on the
captioned pairs (``mnist_fashion_pairs``: "a seven on the left and a sneaker on the right").

Three stages of one file (``--config experiments/configs/text2image_cpu.py:<stage>``):

* ``autoencoder``: the ``vae_tiny`` KL autoencoder, 32x32x1 -> 8x8x4, LDM's L1 + 1e-6 KL::

    python experiments/train.py --config experiments/configs/text2image_cpu.py:autoencoder \\
      --workdir workdirs/t2i_autoencoder

* ``latent`` (the default): rectified flow on its latents (``data.autoencoder``), a UNet with
  cross-attention to the frozen all-MiniLM-L6-v2 encoding of the caption, caption dropout 0.1
  for classifier-free guidance::

    python experiments/train.py --config experiments/configs/text2image_cpu.py:latent \\
      --workdir workdirs/t2i_latent
    python experiments/sample.py --workdir workdirs/t2i_latent \\
      --prompt "a seven on the left and a sneaker on the right" --guidance 3

* ``pixel``: the same denoiser on the 32x32 pixels (one more UNet level), for
  :data:`COMPARISON_STEPS` steps (2.7 s a step on 2 cores, 8x the latent model's; claim 18):
  the latent-vs-pixel comparison of claim 18 trains ``latent`` for as many steps.

Hardware: 2 CPU cores; time and results: README section "Text-to-image (latent diffusion)".
Expected: recognisable items where the caption puts them; caption accuracy rising with the
guidance scale, on held-out combinations well above the 1/400 of chance.

Full scale (GPU/TPU, not run here): latent DiT-B/2 on ImageNet-256 in the SD VAE's latents
(``model.preset=dit_b2``, ``data.autoencoder=diffusers:<sd-vae-ft-ema folder>``,
``data.name=tfds:imagenet2012``, batch 256, 400k steps): the DiT paper's FID-50K is 43.5
without guidance (Peebles & Xie 2023, Table 4).
"""

import ml_collections

from jaxdiff import train

DATA = {"name": "mnist_fashion_pairs", "image_size": None}
AUTOENCODER = train.config_dict({
    "data": DATA,
    "model": {"preset": "vae_tiny"},
    "diffusion": {"process": "autoencoder"},
    "optim": {"learning_rate": 1e-3, "warmup_steps": 100, "ema_decay": 0.99},
    "train": {"batch_size": 32, "num_steps": 1500, "checkpoint_every": 500, "log_every": 50,
              "eval_every": 500, "sample_count": 64, "sample_steps": None},
})


COMPARISON_STEPS = 500
"""The training budget of the latent-vs-pixel comparison (steps of batch 64)."""


def _denoiser(autoencoder: str | None, num_steps: int = 3000) -> dict:
    latent = autoencoder is not None
    return {
        "data": {**DATA, "conditional": True, "autoencoder": autoencoder},
        "model": {"preset": "unet_tiny",
                  "overrides": {"image_size": 8 if latent else 32, "base_channels": 64,
                                "channel_mults": (1, 2) if latent else (1, 2, 2),
                                "num_res_blocks": 1,
                                "attention_levels": (0, 1) if latent else (2,),
                                "num_heads": 4, "num_groups": 8}},
        "diffusion": {"process": "flow"},
        "optim": {"learning_rate": 1e-3, "warmup_steps": 100, "ema_decay": 0.995},
        "train": {"batch_size": 64, "num_steps": num_steps, "checkpoint_every": 1000,
                  "log_every": 50, "eval_every": 1000, "sample_count": 64, "sampler": "euler",
                  "sample_steps": 50},
    }


def get_config(stage: str = "latent") -> ml_collections.ConfigDict:
    if stage == "autoencoder":
        return AUTOENCODER
    if stage == "latent":
        return train.config_dict(_denoiser("workdirs/t2i_autoencoder"))
    if stage == "pixel":
        return train.config_dict(_denoiser(None, COMPARISON_STEPS))
    raise ValueError(f"stage must be autoencoder, latent or pixel, got {stage!r}")
