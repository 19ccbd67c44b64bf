r"""Claim 7: a trained denoiser reconstructs the data less well the more noise was added --
the reconstruction error grows with :math:`t` -- and the per-timestep training loss shows
where the model's error lies.

For the three unconditional runs of :mod:`claims._image_runs` (``cosine-eps``,
``linear-eps``, ``cosine-hybrid``; EMA parameters; the eps half of the hybrid model's output),
on the first :data:`NUM_IMAGES` test digits:

* :func:`jaxdiff.metrics.diagnostics.reconstruction_error` at paper-index levels
  :data:`LEVELS` (library steps in ``[0, T)``): MSE and PSNR of the one-step
  :math:`\hat x_0(x_t, t)` and of the deterministic DDIM chain (:data:`CHAIN_STEPS` model
  calls) from :math:`x_t`, ``clip_x0=True`` (the report's protocol);
* :func:`jaxdiff.metrics.diagnostics.loss_per_timestep`: the eps-MSE training loss in 10
  equal buckets of ``[0, T)``.

Expected: for every model, the one-step and the chain MSE grow strictly from each level to the
next (for the optimal denoiser the one-step error is the MMSE, which cannot fall as the SNR
falls). The data's per-pixel variance (the MMSE of the best constant guess, what the
one-step error tends to as :math:`\bar\alpha_t \to 0`) is reported for reference.
"""

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs
from claims._figures import save_figure

NAME = "reconstruction"
CLAIM = ("The reconstruction error of a trained denoiser (one-step x0 estimate and the DDIM "
         "chain from x_t) grows with the noise level t.")

RUNS = ("cosine-eps", "linear-eps", "cosine-hybrid")
LEVELS = (0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999)
CHAIN_STEPS = 20
LOSS_BUCKETS = 10
FIGURE_LEVELS = (100, 300, 500, 700, 900)
FIGURE_DIGITS = 8
SEED = 0
NUM_IMAGES = 200        # the first 200 test digits (CPU budget)


def run(out_dir) -> dict:
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    test = runs.test_split()
    x0 = jnp.asarray(test.images[:NUM_IMAGES])
    key = jax.random.key(SEED)
    models, figures = {}, []
    for name in RUNS:
        run_, state = runs.trained_run(name)
        denoiser = jd.tasks.gaussian.eps_denoiser(run_, state.ema_params)
        rec = jd.metrics.reconstruction_error(
            jax.random.fold_in(key, 0), denoiser, run_.process, x0,
            np.asarray(LEVELS, np.int32), num_steps=CHAIN_STEPS, clip_x0=True)
        edges, loss = jd.metrics.loss_per_timestep(jax.random.fold_in(key, 1), denoiser,
                                                   run_.process, x0, num_buckets=LOSS_BUCKETS)
        models[name] = {
            "info": runs.run_info(name),
            "mse_one_step": np.asarray(rec.mse_one_step).tolist(),
            "psnr_one_step": np.asarray(rec.psnr_one_step).tolist(),
            "mse_chain": np.asarray(rec.mse_chain).tolist(),
            "psnr_chain": np.asarray(rec.psnr_chain).tolist(),
            "loss_bucket_edges": np.asarray(edges).tolist(),
            "loss_per_bucket": np.asarray(loss).tolist(),
        }
        figures.append(_reconstruction_grid(out_dir, name, run_, denoiser,
                                            x0[:FIGURE_DIGITS], key))
    train_mean = np.asarray(jd.data.load(runs.DATASET, "train").images).mean(0)
    figures += _plot(out_dir, models)
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "runs": list(RUNS), "levels": list(LEVELS), "chain_steps": CHAIN_STEPS,
            "clip_x0": True, "loss_buckets": LOSS_BUCKETS, "num_images": NUM_IMAGES,
            "data": "digits:test", "params": "EMA", "seed": SEED,
            "backend": jax.default_backend(), "jax_version": jax.__version__,
        },
        "models": models,
        "data_variance_per_pixel": float(np.mean((np.asarray(test.images) - train_mean) ** 2)),
        "figures": figures,
        "figure_notes": {
            f"{NAME}_<run>.png": (f"rows: {FIGURE_DIGITS} test digits; columns: the digit, "
                                  "then for t = " + ", ".join(map(str, FIGURE_LEVELS))
                                  + f": x_t, one-step x0_hat, DDIM-{CHAIN_STEPS} chain"),
        },
        "runtime_s": round(time.time() - start, 2),
    }


def _reconstruction_grid(out_dir, name, run_, denoiser, x0, key) -> str:
    columns = [np.asarray(x0)]
    for k, level in enumerate(FIGURE_LEVELS):
        t = jnp.full((x0.shape[0],), level, jnp.int32)
        noise = jax.random.normal(jax.random.fold_in(key, 100 + k), x0.shape)
        x_t = jd.gaussian.q_sample(run_.process, x0, t, noise)
        alpha, sigma = jd.gaussian.alpha_sigma(run_.process, t)
        shape = (-1,) + (1,) * (x0.ndim - 1)
        eps = denoiser(x_t, t, None)
        one = jnp.clip((x_t - sigma.reshape(shape) * eps) / alpha.reshape(shape), -1, 1)
        chain = jd.metrics.diagnostics.ddim_reconstruct(denoiser, run_.process, x_t, t,
                                                        num_steps=CHAIN_STEPS, clip_x0=True)
        columns += [np.clip(np.asarray(x_t), -1, 1), np.asarray(one), np.asarray(chain)]
    grid = np.stack(columns, axis=1)
    return runs.save_grid(out_dir / f"{NAME}_{name}.png", grid.reshape(-1, *grid.shape[2:]),
                          columns=grid.shape[1])


def _plot(out_dir, models) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rec, ax_loss) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    for i, (name, m) in enumerate(models.items()):
        color = f"C{i}"
        ax_rec.plot(LEVELS, m["mse_one_step"], "o-", color=color, label=f"{name} one-step")
        ax_rec.plot(LEVELS, m["mse_chain"], "s--", color=color, label=f"{name} DDIM chain")
        edges = np.asarray(m["loss_bucket_edges"])
        ax_loss.plot(0.5 * (edges[:-1] + edges[1:]), m["loss_per_bucket"], "o-", color=color,
                     label=name)
    ax_rec.set(xlabel="t", ylabel="MSE", yscale="log", title="reconstruction error from x_t")
    ax_loss.set(xlabel="t (bucket centre)", ylabel="eps MSE", yscale="log",
                title="training loss per timestep")
    for ax in (ax_rec, ax_loss):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    return [save_figure(fig, out_dir, f"{NAME}_curves.png")]


def check(results: dict) -> list[str]:
    failures = []
    try:
        if tuple(results["setup"]["levels"]) != LEVELS:
            failures.append(f"levels {results['setup']['levels']} are not {list(LEVELS)}")
        for name in RUNS:
            m = results["models"][name]
            for field in ("mse_one_step", "mse_chain"):
                mse = np.asarray(m[field], np.float64)
                if len(mse) != len(LEVELS) or not np.all(np.isfinite(mse)):
                    failures.append(f"{name}: {field} is not {len(LEVELS)} finite values")
                    continue
                for i in range(1, len(LEVELS)):
                    if not mse[i] > mse[i - 1]:
                        failures.append(f"{name}: {field} does not grow from t={LEVELS[i - 1]}"
                                        f" ({mse[i - 1]:.4g}) to t={LEVELS[i]} ({mse[i]:.4g})")
                psnr = 10 * np.log10(4.0 / mse)
                if not np.allclose(psnr, m[field.replace("mse", "psnr")], atol=1e-3):
                    failures.append(f"{name}: recorded PSNR is not 10 log10(4 / MSE)")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
