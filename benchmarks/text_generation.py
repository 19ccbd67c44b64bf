"""Text generation speed: discrete diffusion (D3PM absorbing, masked diffusion) in 20 steps,
block diffusion with and without its KV cache, vs left-to-right autoregressive sampling with
and without a KV cache, same-size models.

All seven samplers generate ``batch`` sequences (batch 1 and 32 by default) of ``length``
characters (byte-level ids 0..255, id 256 = ``[MASK]`` for diffusion and BOS for the AR
model):

* ``d3pm_absorbing_20``: ``jaxdiff.discrete.d3pm_sample`` with ``num_steps=20`` on an
  absorbing D3PM process with T = 1000 (Austin et al. 2021), bidirectional ``text_tiny``
  network (adaLN time conditioning);
* ``masked_20``: ``jaxdiff.discrete.masked_sample`` with ``num_steps=20`` (MDLM / MD4
  unmasking, log-linear schedule), the same network;
* ``masked_20_cached``: the same with ``cache=True`` (MDLM's cached sampler: no network
  call after a step that unmasked nothing) on the bidirectional network without time
  conditioning (the cache is exact only there);
* ``block_16_kv_cache``: ``jaxdiff.discrete.block_sample`` (BD3-LM) with blocks of 16
  characters, ``--block-steps`` unmasking steps per block (default 16), the block network's
  ``decode_block`` with the KV cache of the finished blocks;
* ``block_16_no_cache``: the same, every step rerunning the whole sequence
  (``uncached_block_decoder``);
* ``ar_kv_cache``: ``jaxdiff.autoregressive.ar_sample_cached`` with the causal
  ``text_causal_tiny`` network's ``decode_step`` / ``init_cache`` (``length`` decode steps);
* ``ar_no_cache``: ``jaxdiff.autoregressive.ar_sample``: ``length`` full forward passes of
  the causal network (O(L^2) work).

The networks are the presets with ``max_length = length``: width 64, 2 blocks, 4 heads,
vocabulary 257; the causal, untimed and block ones have no time conditioning (see the
parameter counts in the output). Weights are random (speed does not depend on them; the
samples are noise). Each sampler is one jitted program (compiled before timing); rounds
alternate the order of the samplers; results are medians. Writes
``<out>/text_generation_<device>.json`` and ``.md``.

    python benchmarks/text_generation.py --rounds 5
    python benchmarks/text_generation.py --rounds 5 --device gpu
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time

# Austin et al. 2021 (D3PM), text8 sampling time for 256 characters (Table / Sec. 5.1 of
# the paper): absorbing D3PM with 20 steps 0.0785 s vs an autoregressive transformer 0.357 s.
PAPER_REFERENCE = {"d3pm_absorbing_20_s": 0.0785, "ar_transformer_s": 0.357,
                   "speedup": 0.357 / 0.0785}
MASK_ID = 256
TRAIN_STEPS_T = 1000
SAMPLERS = ("d3pm_absorbing_20", "masked_20", "masked_20_cached", "block_16_kv_cache",
            "block_16_no_cache", "ar_kv_cache", "ar_no_cache")
BLOCK_SIZE = 16


def speedup(ar_seconds: float, diffusion_seconds: float) -> float:
    """How many times faster diffusion is: ``ar_seconds / diffusion_seconds``."""
    return ar_seconds / diffusion_seconds


def build(args, B):
    """Compiled samplers at batch ``B`` ``{name: (fn, params)}`` and the model sizes."""
    import jax
    from flax import nnx

    import jaxdiff.models as jm
    from jaxdiff.autoregressive import ar_sample, ar_sample_cached
    from jaxdiff.discrete import (
        block_process,
        block_sample,
        d3pm_process,
        d3pm_sample,
        masked_process,
        masked_sample,
        uncached_block_decoder,
    )

    L = args.length
    diffusion_config = jm.preset_config("text_tiny", max_length=L)
    causal_config = jm.preset_config("text_causal_tiny", max_length=L)
    untimed_config = dataclasses.replace(diffusion_config, time_conditioning=False)
    block_config = dataclasses.replace(untimed_config, block_size=BLOCK_SIZE)
    d_graphdef, d_params, d_rest = jm.init(diffusion_config, key=jax.random.key(0))
    c_graphdef, c_params, c_rest = jm.init(causal_config, key=jax.random.key(1))
    u_graphdef, u_params, u_rest = jm.init(untimed_config, key=jax.random.key(4))
    b_graphdef, b_params, b_rest = jm.init(block_config, key=jax.random.key(5))
    # random weights (the presets zero-initialise the output layers, which would make every
    # distribution uniform): speed does not depend on the values
    d_params = _randomise(d_params, 2)
    c_params = _randomise(c_params, 3)
    u_params = _randomise(u_params, 6)
    b_params = _randomise(b_params, 7)
    diffusion = jm.make_apply_fn(d_graphdef, d_rest)
    causal = jm.make_apply_fn(c_graphdef, c_rest)
    untimed = jm.make_apply_fn(u_graphdef, u_rest)
    block_net = jm.make_apply_fn(b_graphdef, b_rest)
    init_cache, decode_block = jm.make_decode_fns(b_graphdef, b_rest)
    blocks = block_process("loglinear", vocab_size=block_config.vocab_size, mask_id=MASK_ID,
                           block_size=BLOCK_SIZE)
    absorbing = d3pm_process("absorbing", vocab_size=diffusion_config.vocab_size,
                             num_steps=TRAIN_STEPS_T, mask_id=MASK_ID)
    masking = masked_process("loglinear", vocab_size=diffusion_config.vocab_size,
                             mask_id=MASK_ID)

    def d3pm(params, key):
        return d3pm_sample(key, lambda x, t, c=None: diffusion(params, x, t, c), absorbing,
                           (B, L), num_steps=args.steps)

    def masked(params, key):
        return masked_sample(key, lambda x, t, c=None: diffusion(params, x, t, c), masking,
                             (B, L), num_steps=args.steps)

    def masked_cached(params, key):
        return masked_sample(key, lambda x, t, c=None: untimed(params, x, None, c), masking,
                             (B, L), num_steps=args.steps, cache=True)

    def block_cached(params, key):
        return block_sample(key, lambda x, cache: decode_block(params, x, cache),
                            init_cache(params, B), blocks, (B, L), num_steps=args.block_steps)

    def block_plain(params, key):
        decode_fn, state = uncached_block_decoder(
            lambda x, c: block_net(params, x, None, c), (B, L), mask_id=MASK_ID)
        return block_sample(key, decode_fn, state, blocks, (B, L), num_steps=args.block_steps)

    def ar_cached(params, key):
        model = nnx.merge(c_graphdef, params, c_rest)

        def decode(tokens, cache):
            return nnx.merge(c_graphdef, params, c_rest).decode_step(tokens, cache)

        return ar_sample_cached(key, decode, model.init_cache(B), (B, L), bos_id=MASK_ID)

    def ar_plain(params, key):
        return ar_sample(key, lambda x: causal(params, x, None), (B, L), bos_id=MASK_ID)

    fns = {"d3pm_absorbing_20": (d3pm, d_params), "masked_20": (masked, d_params),
           "masked_20_cached": (masked_cached, u_params),
           "block_16_kv_cache": (block_cached, b_params),
           "block_16_no_cache": (block_plain, b_params),
           "ar_kv_cache": (ar_cached, c_params), "ar_no_cache": (ar_plain, c_params)}
    compiled, compile_s = {}, {}
    for name, (fn, params) in fns.items():
        t = time.perf_counter()
        compiled[name] = (jax.jit(fn).lower(params, jax.random.key(0)).compile(), params)
        compile_s[name] = time.perf_counter() - t
    sizes = {"diffusion_params": jm.count_params(d_params),
             "causal_params": jm.count_params(c_params),
             "untimed_params": jm.count_params(u_params),
             "block_params": jm.count_params(b_params),
             "diffusion_config": dataclasses.asdict(diffusion_config),
             "causal_config": dataclasses.asdict(causal_config)}
    return compiled, compile_s, sizes


def _randomise(params, seed):
    import jax
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(treedef, [
        leaf + 0.05 * jax.random.normal(k, leaf.shape, leaf.dtype)
        for leaf, k in zip(leaves, keys, strict=True)])


def _fmt_load(load):
    return "/".join(f"{x:.1f}" for x in load)


def markdown(result):
    c = result["config"]
    lines = [
        f"# Text generation: {c['length']} characters ({result['machine']['device']}, "
        f"float32)",
        "",
        f"{result['timestamp']}; {result['machine']['cpu']}, {result['machine']['cores']} "
        f"cores; load average (1/5/15 min) {_fmt_load(result['machine']['loadavg_at_start'])} "
        f"at start, {_fmt_load(result['machine']['loadavg_at_end'])} at end; "
        f"{c['rounds']} rounds per batch size, samplers alternated; medians; "
        f"random-init weights. Speed-up = AR-with-KV-cache time / this sampler's time.",
        "",
        "| batch | sampler | network calls | s per batch | ms per sequence | speed-up vs AR "
        "+ KV cache |",
        "|---|---|---|---|---|---|",
    ]
    calls = {"d3pm_absorbing_20": f"{c['steps']} x full sequence",
             "masked_20": f"{c['steps']} x full sequence",
             "masked_20_cached": f"<= {c['steps']} x full sequence (skips unchanged steps)",
             "block_16_kv_cache": f"<= {c['block_steps']} x {BLOCK_SIZE} tokens per block + "
                                  f"1 append, KV cache",
             "block_16_no_cache": f"<= {c['block_steps']} x full sequence per block + 1",
             "ar_kv_cache": f"{c['length']} x one token (KV cache)",
             "ar_no_cache": f"{c['length']} x full sequence"}
    for batch, s in result["seconds_median"].items():
        for name in SAMPLERS:
            lines.append(f"| {batch} | {name} | {calls[name]} | {s[name]:.3f} | "
                         f"{1e3 * s[name] / int(batch):.2f} | "
                         f"{speedup(s['ar_kv_cache'], s[name]):.2f}x |")
    sz = result["sizes"]
    lines += [
        "",
        f"Networks: bidirectional `text_tiny` (max_length={c['length']}) "
        f"{sz['diffusion_params']:,} parameters, causal `text_causal_tiny` "
        f"{sz['causal_params']:,} parameters, untimed {sz['untimed_params']:,}, block "
        f"(block {BLOCK_SIZE}) {sz['block_params']:,} (width 64, 2 blocks, 4 heads, "
        f"vocabulary 257). "
        "Compile s (largest batch): " + ", ".join(
            f"{k} {v:.1f}" for k, v in list(result["compile_s"].values())[-1].items()) + ".",
        "",
        f"D3PM paper reference (Austin et al. 2021, text8, 256 characters): absorbing D3PM 20 "
        f"steps {PAPER_REFERENCE['d3pm_absorbing_20_s']} s vs autoregressive "
        f"{PAPER_REFERENCE['ar_transformer_s']} s ({PAPER_REFERENCE['speedup']:.1f}x; their "
        f"models and hardware, not comparable in absolute terms).",
        "",
        "[MASK] ids left in an output (max over rounds; should be 0): "
        + ", ".join(f"{k} {v}" for k, v in result["mask_ids_left_in_output_max"].items())
        + ".",
        "",
        f"XLA_FLAGS: `{result['xla_flags']}`. Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,32",
                        help="comma-separated batch sizes, each measured separately")
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="diffusion steps")
    parser.add_argument("--block-steps", type=int, default=BLOCK_SIZE,
                        help="block diffusion: unmasking steps per block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--default-xla-flags", action="store_true",
                        help="do not add jaxdiff.perf's recommended XLA flags")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if args.device == "cpu" else "cuda")
    import jaxdiff.perf
    if not args.default_xla_flags:
        jaxdiff.perf.apply_recommended_xla_flags(args.device)
    import flax
    import jax

    wall0 = time.perf_counter()
    load = os.getloadavg()
    batches = [int(b) for b in args.batches.split(",")]
    raw, compile_s, median = {}, {}, {}
    leftover = dict.fromkeys(SAMPLERS, 0)  # [MASK] / BOS ids left in an output (should be 0)
    for batch in batches:
        compiled, compile_s[batch], sizes = build(args, batch)
        raw[batch] = {name: [] for name in SAMPLERS}
        for r in range(args.rounds):
            order = SAMPLERS if r % 2 == 0 else tuple(reversed(SAMPLERS))
            for name in order:
                fn, params = compiled[name]
                key = jax.random.key(100 + r)
                t = time.perf_counter()
                out = jax.block_until_ready(fn(params, key))
                raw[batch][name].append(time.perf_counter() - t)
                assert out.shape == (batch, args.length)
                leftover[name] = max(leftover[name], int((out == MASK_ID).sum()))
            print(f"batch {batch} round {r}: "
                  + ", ".join(f"{n} {raw[batch][n][-1]:.3f}s" for n in SAMPLERS), flush=True)
        median[batch] = {name: statistics.median(v) for name, v in raw[batch].items()}
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    result = {
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": vars(args) | {"train_steps_T": TRAIN_STEPS_T, "mask_id": MASK_ID,
                                "weights": "random init (+0.05 N(0,1))"},
        "machine": {"cpu": cpu, "cores": len(os.sched_getaffinity(0)),
                    "device": f"{jax.devices()[0]} ({jax.devices()[0].device_kind})",
                    "loadavg_at_start": load,
                    "loadavg_at_end": os.getloadavg()},
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "versions": {"jax": jax.__version__, "flax": flax.__version__},
        "sizes": sizes, "compile_s": compile_s, "seconds_per_round": raw,
        "seconds_median": median,
        "speedup_vs_ar_kv_cache": {b: {n: speedup(m["ar_kv_cache"], m[n]) for n in SAMPLERS}
                                   for b, m in median.items()},
        "speedup_vs_ar_no_cache": {b: {n: speedup(m["ar_no_cache"], m[n]) for n in SAMPLERS}
                                   for b, m in median.items()},
        "mask_ids_left_in_output_max": leftover,
        "paper_reference": PAPER_REFERENCE,
        "wall_s": time.perf_counter() - wall0,
    }
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"text_generation_{args.device}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
