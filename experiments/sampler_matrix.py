"""The samplers' error matrix on the analytic 2-D mixture (issue 16: samplers safe by default).

Every sampler of the library, driven by the exact optimal denoiser of
``jaxdiff.gaussian.THREE_GAUSSIANS``, on every schedule / path it runs on, with every time
spacing, at a few step counts, in float64: the largest error of the mixture weights and of
the component means (nearest-mean assignment) of 4000 samples. The sampling noise alone
gives weight errors up to ~0.015 and mean errors ~0.005 at this size. The defaults
(the spacing each sampler uses when none is given) are marked. Runs in ~2 minutes on 2 CPU
cores:

    python experiments/sampler_matrix.py [--out experiments/results/sampler_matrix.json]
"""

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from demo import mixture_errors  # experiments/ is on the path

import jaxdiff as jd

NUM_SAMPLES = 4000
DISCRETE = {"ddpm": (50, 1000), "ddim": (10, 50), "dpm_solver++": (10, 20), "heun": (10, 18)}
CONTINUOUS = {"euler": (10, 50), "midpoint": (5, 25), "heun": (5, 18)}
SCHEDULES = {"linear": jd.gaussian.linear_schedule, "cosine": jd.gaussian.cosine_schedule,
             "sigmoid": jd.gaussian.sigmoid_schedule}


def discrete_rows(mix) -> list[dict]:
    rows = []
    for name, build in SCHEDULES.items():
        schedule = build(dtype=jnp.float64)
        for sampler, step_counts in DISCRETE.items():
            spacings = ("uniform",) if sampler == "ddpm" else jd.gaussian.SPACINGS
            for spacing in spacings:
                for steps in step_counts:
                    x = jd.gaussian.sample(jax.random.key(0), mix.denoise_fn(schedule),
                                           schedule, (NUM_SAMPLES, 2), sampler=sampler,
                                           num_steps=steps, spacing=spacing)
                    rows.append({"time": "discrete", "schedule": name, "sampler": sampler,
                                 "spacing": spacing, "steps": steps,
                                 "default": spacing == jd.gaussian.DEFAULT_SPACINGS[sampler],
                                 **mixture_errors(np.asarray(x), mix)})
    return rows


def continuous_rows(mix) -> list[dict]:
    rows = []
    for name in jd.gaussian.PATHS:
        path = jd.gaussian.get_path(name)
        for solver, step_counts in CONTINUOUS.items():
            for spacing in jd.gaussian.GRID_SPACINGS:
                for steps in step_counts:
                    x = jd.gaussian.ode_sample(jax.random.key(0), mix.path_denoise_fn(path),
                                               path, (NUM_SAMPLES, 2), solver=solver,
                                               num_steps=steps, spacing=spacing,
                                               dtype=jnp.float64)
                    rows.append({"time": "continuous", "schedule": name, "sampler": solver,
                                 "spacing": spacing, "steps": steps,
                                 "default": spacing == path.sampling_spacing,
                                 **mixture_errors(np.asarray(x), mix)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| time | schedule / path | sampler | steps | " + " | ".join(
        f"{s}: weight / mean error" for s in jd.gaussian.SPACINGS) + " |",
             "|---|---|---|---|" + "---|" * len(jd.gaussian.SPACINGS)]
    keyed = {(r["time"], r["schedule"], r["sampler"], r["steps"], r["spacing"]): r for r in rows}
    for time_, schedule, sampler, steps in dict.fromkeys(
            (r["time"], r["schedule"], r["sampler"], r["steps"]) for r in rows):
        cells = []
        for spacing in jd.gaussian.SPACINGS:
            r = keyed.get((time_, schedule, sampler, steps, spacing))
            cell = "" if r is None else f"{r['weight_error']:.3f} / {r['mean_error']:.3f}"
            cells.append(f"**{cell}**" if r is not None and r["default"] else cell)
        lines.append(f"| {time_} | {schedule} | {sampler} | {steps} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results"
                                             / "sampler_matrix.json"))
    args = parser.parse_args()
    start = time.time()
    with jax.enable_x64(True):
        mix = jd.gaussian.THREE_GAUSSIANS
        rows = discrete_rows(mix) + continuous_rows(mix)
    out = pathlib.Path(args.out)
    result = {"num_samples": NUM_SAMPLES, "dtype": "float64", "rows": rows,
              "runtime_s": round(time.time() - start, 1), "jax_version": jax.__version__}
    out.write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))
    print(f"wrote {out} and {out.with_suffix('.md')} ({result['runtime_s']} s)")


if __name__ == "__main__":
    main()
