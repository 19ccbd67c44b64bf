r"""Claim 17: latent text-to-image on CPU -- a caption-conditioned latent flow model draws what
its caption says where it says it, better with classifier-free guidance, also for
combinations it never saw (Rombach et al. 2022; Ho & Salimans 2022).

The two runs of ``experiments/configs/text2image_cpu.py``, trained into
``workdirs/claims/t2i-autoencoder`` and ``t2i-latent``: the ``vae_tiny`` KL autoencoder on the
captioned pairs (32x32x1 -> 8x8x4), then rectified flow on its latents with a UNet that
cross-attends to the frozen all-MiniLM-L6-v2 encoding of the caption (caption dropout 0.1).
Measured (:func:`jaxdiff.evaluation.captions.evaluate_text_to_image`, EMA parameters, Euler
:data:`SAMPLE_STEPS` steps): caption accuracy -- the 20-kind item classifier reads both
regions, both must be the caption's kinds; chance 1/400 -- on :data:`CAPTIONS` seen and as
many held-out combinations (never trained on), :data:`PER_CAPTION` samples each, at the
guidance scales :data:`SCALES` (library convention
:math:`\hat v = v_c + w (v_c - v_u)`, the empty caption as :math:`v_u`); the within-caption
spread (diversity), the region-feature FID and the standard Inception FID of the decoded
samples to the real test canvases beside it; the autoencoder's report (PSNR, latent scale).

Expected, stated before the run: on seen captions the accuracy at the largest scale is above
``w = 0`` by more than :data:`Z` standard errors and the spread is lower; on held-out
combinations the best accuracy is above :data:`HELD_OUT_FLOOR` (10x chance); the autoencoder
reconstructs at more than :data:`PSNR_FLOOR` dB.
"""

import pathlib
import time

import jax
import numpy as np
from configs import text2image_cpu

import jaxdiff as jd
from claims import _image_runs as runs
from jaxdiff.data import captions as pairs
from jaxdiff.evaluation import captions as caption_eval

NAME = "text_to_image"
CLAIM = ("Latent text-to-image: a caption-conditioned latent flow model draws the captioned "
         "items in the captioned places, more often with classifier-free guidance, also for "
         "combinations held out of training (Rombach et al. 2022; Ho & Salimans 2022).")

SCALES = (0.0, 1.0, 2.0, 4.0, 6.0)
CAPTIONS, PER_CAPTION = 80, 4
SAMPLE_STEPS = 50
Z = 2.0
HELD_OUT_FLOOR = 10 / 400
PSNR_FLOOR = 18.0
FIGURE_SCALE = 4.0
FIGURE_PROMPTS = ("a seven on the left and a sneaker on the right", "a three above a bag",
                  "an ankle boot on the left and a zero on the right",
                  "a four on the left and a sneaker on the right", "a seven above a zero",
                  "a trouser above a bag")
"""The figure's prompts: three seen in training, then three held out."""


def _trained(name: str, values: dict, claim: str = NAME) -> pathlib.Path:
    workdir = runs.default_root() / name
    steps = values["train"]["num_steps"]
    if not (workdir / "checkpoints" / str(steps)).exists():
        print(f"[{claim}] training {name} for {steps} steps in {workdir}", flush=True)
        jd.train.train(jd.train.from_dict(values), workdir, progress=False)
    return workdir


def _figure(out_dir: pathlib.Path, workdir: pathlib.Path) -> str:
    run, state = jd.train.restore_workdir(workdir)
    count = 8
    rows = []
    for i, prompt in enumerate(FIGURE_PROMPTS):
        sample = jd.train.make_sampler(run, count=count, num_steps=SAMPLE_STEPS,
                                       prompts=[prompt] * count, guidance_scale=FIGURE_SCALE)
        rows.append(run.task.modality.to_pixels(
            run, sample(jax.random.fold_in(jax.random.key(1), i), state.ema_params)))
    return runs.save_grid(out_dir / f"{NAME}_samples.png", np.concatenate(rows),
                          columns=count)


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    autoencoder = _trained("t2i-autoencoder",
                           text2image_cpu.get_config("autoencoder").to_dict())
    latent_values = text2image_cpu.get_config("latent").to_dict()
    latent_values["data"]["autoencoder"] = str(autoencoder)
    latent = _trained("t2i-latent", latent_values)
    ae_report = jd.evaluation.evaluate_autoencoder_run(autoencoder, inception=False,
                                                       progress=False)
    report = caption_eval.evaluate_text_to_image(
        latent, guidance_scales=SCALES, samples_per_caption=PER_CAPTION,
        captions_per_set=CAPTIONS, sampler="euler", steps=SAMPLE_STEPS, inception=True,
        progress=True)
    held = set(pairs.held_out_ids().tolist())
    figure_held_out = [pairs.CAPTIONS.index(p) in held for p in FIGURE_PROMPTS]
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"config": "experiments/configs/text2image_cpu.py", "scales": list(SCALES),
                  "guidance": "v_c + w (v_c - v_u), v_u: the empty caption",
                  "captions_per_set": CAPTIONS, "samples_per_caption": PER_CAPTION,
                  "sampler": "euler", "sample_steps": SAMPLE_STEPS, "params": "EMA",
                  "chance": 1 / 400, "backend": jax.default_backend(),
                  "jax_version": jax.__version__,
                  "autoencoder_info": _info(autoencoder), "latent_info": _info(latent)},
        "tolerances": {"z": Z, "held_out_floor": HELD_OUT_FLOOR, "psnr_floor": PSNR_FLOOR},
        "autoencoder": {k: ae_report[k] for k in ("psnr", "mse", "kl_per_image",
                                                  "latent_scale", "latent_std",
                                                  "latent_shape", "parameters")},
        "captions": report,
        "figures": [_figure(out_dir, latent)],
        "figure_notes": {f"{NAME}_samples.png": (
            f"rows: the prompts {list(FIGURE_PROMPTS)} (held out of training: "
            f"{figure_held_out}); 8 samples each at w = {FIGURE_SCALE:g}")},
        "runtime_s": round(time.time() - start, 2),
    }


def _info(workdir: pathlib.Path) -> dict:
    lines = jd.train.read_metrics(workdir)
    evals = [m for m in lines if "eval_loss" in m]
    speeds = [m["steps_per_second"] for m in lines if "steps_per_second" in m]
    return {"workdir": workdir.name, "steps": lines[-1]["step"] if lines else None,
            "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
            "median_steps_per_second": float(np.median(speeds)) if speeds else None}


def _stderr(accuracy: float, n: int) -> float:
    return float(np.sqrt(accuracy * (1 - accuracy) / n))


def check(results: dict) -> list[str]:
    failures = []
    try:
        rows = results["captions"]["by_guidance"]
        n = results["setup"]["captions_per_set"] * results["setup"]["samples_per_caption"]
        first, last = rows[0]["seen"], rows[-1]["seen"]
        a0, a1 = first["caption_accuracy"], last["caption_accuracy"]
        margin = Z * np.hypot(_stderr(a0, n), _stderr(a1, n))
        if not a1 - a0 > margin:
            failures.append(f"seen accuracy at w={rows[-1]['guidance_scale']:g} ({a1:.3f}) is "
                            f"not above w=0 ({a0:.3f}) by {Z} standard errors ({margin:.3f})")
        if not last["within_caption_spread"] < first["within_caption_spread"]:
            failures.append(f"the within-caption spread does not fall from w=0 "
                            f"({first['within_caption_spread']:.4f}) to the largest scale "
                            f"({last['within_caption_spread']:.4f})")
        best = max(r["held_out"]["caption_accuracy"] for r in rows)
        if not best > HELD_OUT_FLOOR:
            failures.append(f"held-out accuracy {best:.3f} is not above {HELD_OUT_FLOOR:.3f} "
                            f"(10x chance)")
        if not results["autoencoder"]["psnr"] > PSNR_FLOOR:
            failures.append(f"autoencoder PSNR {results['autoencoder']['psnr']:.2f} dB is not "
                            f"above {PSNR_FLOOR} dB")
    except (KeyError, TypeError, ValueError, IndexError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
