"""Demo of the functional Gaussian-diffusion API on data whose answers are known exactly.

Samples a 2-D mixture of 3 Gaussians with its analytic optimal denoiser through every
sampler, and measures the likelihood of 1-D Gaussian data by the VLB and the probability-flow
ODE against the true value. Runs in about a minute on 2 CPU cores:

    python experiments/demo.py [--out results.json]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiff as jd

SAMPLER_RUNS = [  # (sampler, steps, spacing)
    ("ddpm", 1000, "uniform"),
    ("ddpm", 50, "uniform"),
    ("ddim", 50, "uniform"),
    ("dpm_solver++", 20, "log_snr"),
    ("heun", 20, "log_snr"),
]


def mixture_errors(x: np.ndarray, mix: jd.gaussian.GaussianMixture) -> dict:
    """Largest errors of the component weights and means, by nearest-mean assignment (a
    component that receives no sample counts as a mean error of infinity)."""
    x = np.asarray(x, np.float64)
    comp = ((x[:, None, :] - mix.means[None]) ** 2).sum(-1).argmin(1)
    weights = np.bincount(comp, minlength=len(mix.weights)) / len(x)
    means = np.stack([x[comp == k].mean(0) if np.any(comp == k) else np.full(x.shape[1], np.inf)
                      for k in range(len(mix.weights))])
    return {"weight_error": float(np.abs(weights - mix.weights).max()),
            "mean_error": float(np.abs(means - mix.means).max())}


def sampler_table(schedule, num_samples: int) -> list[dict]:
    mix = jd.gaussian.THREE_GAUSSIANS
    rows = []
    for sampler, steps, spacing in SAMPLER_RUNS:
        run = jax.jit(lambda key, s=sampler, n=steps, sp=spacing: jd.gaussian.sample(
            key, mix.denoise_fn(schedule), schedule, (num_samples, 2), sampler=s,
            num_steps=n, spacing=sp))
        run(jax.random.key(0)).block_until_ready()          # compile
        start = time.perf_counter()
        x = np.asarray(run(jax.random.key(1)), np.float64)
        rows.append({"sampler": sampler, "steps": steps, "spacing": spacing,
                     "seconds": time.perf_counter() - start, **mixture_errors(x, mix)})
    return rows


def likelihood_table(schedule, num_points: int) -> dict:
    mean, std = 0.5, 0.3
    data = jd.gaussian.GaussianMixture([1.0], [[mean]], [std])
    x0 = jnp.asarray(data.sample(np.random.default_rng(0), num_points), jnp.float32)
    true = 0.5 * np.log(2 * np.pi * np.e * std**2)
    result = {"true_nats": true}
    for method in ("vlb", "ode"):
        bpd = jax.jit(lambda key, m=method: jd.gaussian.nll_bits_per_dim(
            key, data.denoise_fn(schedule), schedule, x0, method=m, num_bins=None))
        nats = np.asarray(bpd(jax.random.key(2)), np.float64) * np.log(2)
        result[f"{method}_nats"] = float(nats.mean())
        result[f"{method}_std_error"] = float(nats.std() / np.sqrt(num_points))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--num-samples", type=int, default=10000)
    args = parser.parse_args()
    schedule = jd.gaussian.cosine_schedule(num_steps=1000)
    samplers = sampler_table(schedule, args.num_samples)
    print(f"{'sampler':>14} {'steps':>5} {'spacing':>8} {'weight err':>10} {'mean err':>9} "
          f"{'seconds':>8}")
    for r in samplers:
        print(f"{r['sampler']:>14} {r['steps']:>5} {r['spacing']:>8} {r['weight_error']:>10.4f} "
              f"{r['mean_error']:>9.4f} {r['seconds']:>8.3f}")
    nll = likelihood_table(schedule, 4000)
    print(f"NLL of N(0.5, 0.3^2) data, nats/dim: true {nll['true_nats']:.4f}, "
          f"VLB {nll['vlb_nats']:.4f} +- {nll['vlb_std_error']:.4f}, "
          f"ODE {nll['ode_nats']:.4f} +- {nll['ode_std_error']:.4f} (Monte Carlo std errors)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"samplers": samplers, "likelihood": nll}, f, indent=2)


if __name__ == "__main__":
    main()
