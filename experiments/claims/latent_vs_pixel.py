r"""Claim 18: latent diffusion is much cheaper per step than pixel diffusion at similar
quality (Rombach et al. 2022, Sec. 4.1: "LDMs ... significantly reduce computational costs
compared to pixel-based DMs").

Two caption-conditioned flow models of ``experiments/configs/text2image_cpu.py`` at the same
budget, :data:`~configs.text2image_cpu.COMPARISON_STEPS` steps of batch 64 on 2 CPU cores:
``latent`` (the 8x8x4 latents of claim 17's autoencoder, a two-level UNet) and ``pixel`` (the
32x32 canvases, the same UNet with one more level, attention at 8x8 as in the latent model's
top level), trained into ``workdirs/claims/t2i-latent-500`` and ``t2i-pixel``. Measured on each:
the train step time (median of :data:`TIMED_STEPS` jitted steps after compilation), the
sampling time per image (Euler :data:`SAMPLE_STEPS` steps, a batch of :data:`TIMED_BATCH`,
median of :data:`TIMED_REPEATS` calls after compilation, decoding included for the latent
model), and at the guidance scales :data:`SCALES` on :data:`CAPTIONS` seen captions x
:data:`PER_CAPTION` samples: caption accuracy, the region-feature FID and the standard
Inception FID of the (decoded) samples to the real test canvases.

Expected, stated before the run: the latent model's train step and its sampling per image
are each more than :data:`SPEEDUP_FLOOR` times faster; at the same budget its caption accuracy
at every scale is within :data:`ACCURACY_MARGIN` of the pixel model's or above, and its
Inception FID at ``w = 0`` at most :data:`FID_RATIO` times the pixel model's.
"""

import pathlib
import time

import jax
import numpy as np
from configs import text2image_cpu

import jaxdiff as jd
from claims import text_to_image
from jaxdiff.evaluation import captions as caption_eval

NAME = "latent_vs_pixel"
CLAIM = ("Latent diffusion: at the same training budget a latent flow model trains and "
         "samples several times faster per image than the same UNet on pixels, at similar "
         "caption accuracy and FID (Rombach et al. 2022).")

SCALES = (0.0, 2.0)
CAPTIONS, PER_CAPTION = 40, 4
SAMPLE_STEPS = 50
TIMED_STEPS, TIMED_BATCH, TIMED_REPEATS = 10, 64, 3
SPEEDUP_FLOOR = 3.0
ACCURACY_MARGIN = 0.1
FID_RATIO = 1.5
MODELS = {"latent": f"t2i-latent-{text2image_cpu.COMPARISON_STEPS}", "pixel": "t2i-pixel"}


def _config(model: str, autoencoder: pathlib.Path) -> dict:
    values = text2image_cpu.get_config(model).to_dict()
    if model == "latent":
        values["data"]["autoencoder"] = str(autoencoder)
        values["train"]["num_steps"] = text2image_cpu.COMPARISON_STEPS
    return values


def _median_seconds(fn, repeats: int) -> float:
    fn()                                                      # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def train_step_seconds(workdir: pathlib.Path) -> float:
    """Median seconds of one jitted training step of the run in ``workdir`` (its config,
    fresh parameters, its first batch)."""
    run = jd.train.build_run(jd.train.load_config(workdir))
    step = jax.jit(jd.train.make_train_step(jd.train.loss_fn_for(run, train=True),
                                            run.optimizer,
                                            ema_decay=run.config.optim.ema_decay))
    batch = jax.tree.map(jax.numpy.asarray, next(jd.train.train_batches(run, start_step=0)))
    state = jd.train.initial_state(run)
    return _median_seconds(lambda: step(state, batch)[1]["loss"], TIMED_STEPS)


def sample_seconds_per_image(workdir: pathlib.Path) -> float:
    """Median seconds per image of Euler sampling and decoding a batch of captions."""
    run, state = jd.train.restore_workdir(workdir)
    sample = jd.train.make_sampler(run, count=TIMED_BATCH, num_steps=SAMPLE_STEPS)
    key = jax.random.key(0)
    return _median_seconds(lambda: run.task.modality.to_pixels(
        run, sample(key, state.ema_params)), TIMED_REPEATS) / TIMED_BATCH


def run(out_dir) -> dict:
    start = time.time()
    autoencoder = text_to_image._trained("t2i-autoencoder",
                                         text2image_cpu.get_config("autoencoder").to_dict())
    measured = {}
    for model, name in MODELS.items():
        workdir = text_to_image._trained(name, _config(model, autoencoder), claim=NAME)
        report = caption_eval.evaluate_text_to_image(
            workdir, guidance_scales=SCALES, samples_per_caption=PER_CAPTION,
            captions_per_set=CAPTIONS, held_out=False, sampler="euler", steps=SAMPLE_STEPS,
            inception=True, progress=True)
        measured[model] = {
            "train_step_s": train_step_seconds(workdir),
            "sample_s_per_image": sample_seconds_per_image(workdir),
            "parameters": jd.models.count_params(jd.train.restore_workdir(workdir)[1].params),
            "by_guidance": [{"guidance_scale": r["guidance_scale"], **r["seen"]}
                            for r in report["by_guidance"]],
            "info": text_to_image._info(workdir)}
        jax.clear_caches()
    latent, pixel = measured["latent"], measured["pixel"]
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"config": "experiments/configs/text2image_cpu.py",
                  "steps": text2image_cpu.COMPARISON_STEPS, "batch_size": 64,
                  "scales": list(SCALES), "captions": CAPTIONS, "samples_per_caption": PER_CAPTION,
                  "sampler": "euler", "sample_steps": SAMPLE_STEPS,
                  "timing": {"train_steps": TIMED_STEPS, "sample_batch": TIMED_BATCH,
                             "sample_repeats": TIMED_REPEATS, "statistic": "median"},
                  "backend": jax.default_backend(), "jax_version": jax.__version__},
        "tolerances": {"speedup_floor": SPEEDUP_FLOOR, "accuracy_margin": ACCURACY_MARGIN,
                       "fid_ratio": FID_RATIO},
        "models": measured,
        "speedup": {"train_step": pixel["train_step_s"] / latent["train_step_s"],
                    "sampling": pixel["sample_s_per_image"] / latent["sample_s_per_image"]},
        "figures": [], "runtime_s": round(time.time() - start, 2),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        for what, ratio in results["speedup"].items():
            if not ratio > SPEEDUP_FLOOR:
                failures.append(f"latent {what} is {ratio:.2f}x faster than pixel, not more "
                                f"than {SPEEDUP_FLOOR}x")
        latent, pixel = results["models"]["latent"], results["models"]["pixel"]
        for lat, pix in zip(latent["by_guidance"], pixel["by_guidance"], strict=True):
            if not lat["caption_accuracy"] >= pix["caption_accuracy"] - ACCURACY_MARGIN:
                failures.append(f"w={lat['guidance_scale']:g}: latent caption accuracy "
                                f"{lat['caption_accuracy']:.3f} is more than "
                                f"{ACCURACY_MARGIN} below pixel's {pix['caption_accuracy']:.3f}")
        fid_l, fid_p = (m["by_guidance"][0]["inception_fid"] for m in (latent, pixel))
        if not fid_l <= FID_RATIO * fid_p:
            failures.append(f"latent Inception FID {fid_l:.1f} at w=0 is above {FID_RATIO}x "
                            f"pixel's {fid_p:.1f}")
    except (KeyError, TypeError, ValueError, IndexError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
