"""Reproduces the claims of the seed, one module per claim in ``experiments/claims/``.

Each claim writes ``<out>/<name>.json`` (the measured numbers, the expected ones and the
tolerances) and its figures ``<out>/<name>*.png``; ``experiments/RESULTS.md`` reports them.

    python experiments/reproduce.py                        # rerun every claim
    python experiments/reproduce.py --only forward_process # rerun one claim
    python experiments/reproduce.py --check                # check the committed results
    python experiments/reproduce.py --only forward_process --check   # rerun it, then check

``--check`` reads the results files without rerunning (unless ``--only`` names a claim to
rerun first), prints every failure and exits with status 1 if any claim fails or has no
results file.
"""

import argparse
import json
import pathlib
import sys
import time

# experiments/ is on the path: as a script (its own directory) or from the tests (pytest's
# pythonpath setting in pyproject.toml).
from claims import (
    block_diffusion,
    forward_process,
    guidance,
    inpainting,
    inpainting_samplers,
    latent_vs_pixel,
    learned_variance,
    mode_coverage,
    posthoc_ema,
    process_comparison,
    reconstruction,
    remasking,
    sampler_steps,
    schedule_comparison,
    straightness,
    subword_tokens,
    text_guidance,
    text_inpainting,
    text_likelihood,
    text_quality,
    text_speed,
    text_to_image,
    vdm_bound,
)

_HERE = pathlib.Path(__file__).resolve().parent


CLAIMS = (forward_process, schedule_comparison, learned_variance, sampler_steps, guidance,
          mode_coverage, reconstruction, inpainting, text_likelihood, text_speed,
          text_inpainting, text_quality, process_comparison, vdm_bound,
          straightness, posthoc_ema, text_to_image, latent_vs_pixel, block_diffusion,
          remasking, text_guidance, subword_tokens, inpainting_samplers)
DEFAULT_OUT = _HERE / "results"


def results_path(out: pathlib.Path, claim) -> pathlib.Path:
    return pathlib.Path(out) / f"{claim.NAME}.json"


def run_claim(claim, out: pathlib.Path) -> dict:
    """Runs ``claim`` and writes its JSON into ``out``."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    results = claim.run(out)
    with open(results_path(out, claim), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    print(f"[{claim.NAME}] ran in {time.time() - start:.1f} s -> {results_path(out, claim)}")
    return results


def check_claim(claim, out: pathlib.Path) -> list[str]:
    """The failures of ``claim``'s results file in ``out`` (one if it is missing)."""
    path = results_path(out, claim)
    if not path.exists():
        return [f"no results file {path}: run `python experiments/reproduce.py --only "
                f"{claim.NAME}`"]
    with open(path) as f:
        try:
            results = json.load(f)
        except json.JSONDecodeError as err:
            return [f"{path} is not valid JSON: {err}"]
    return claim.check(results)


def main(argv=None) -> int:
    names = [c.NAME for c in CLAIMS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=names, action="append",
                        help="rerun only this claim (repeatable)")
    parser.add_argument("--check", action="store_true",
                        help="check the results files against their tolerances; reruns only "
                             "the claims named by --only")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help="results folder (default: experiments/results)")
    args = parser.parse_args(argv)
    selected = [c for c in CLAIMS if args.only is None or c.NAME in args.only]
    if args.only or not args.check:
        for claim in selected:
            run_claim(claim, args.out)
    if not args.check:
        return 0
    failed = 0
    for claim in selected:
        failures = check_claim(claim, args.out)
        print(f"[{claim.NAME}] {'FAIL' if failures else 'ok'}")
        for message in failures:
            print(f"  - {message}")
        failed += bool(failures)
    print(f"{len(selected) - failed}/{len(selected)} claims hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
