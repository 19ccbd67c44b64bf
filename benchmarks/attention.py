"""Attention implementations side by side: jaxdiff's ``multi_head_attention`` (flash-style,
hand-written backward; in ~4 MiB chunks, its CPU default, and in one chunk, its GPU / TPU
default) vs ``jax.nn.dot_product_attention`` (XLA, and cuDNN on a GPU) and PyTorch's
``scaled_dot_product_attention`` when torch is installed.

Shapes (``[batch, length, heads, head_dim]``): the benchmark UNet's 16x16 attention
(16 x 256 x 16 x 8, ``unet``), the text presets (32 x 256 x 4 x 16, ``text``) and a
wider one (8 x 1024 x 8 x 64, ``wide``). Each is timed forward and forward + backward
(gradient of ``sum(out * g)`` for q, k, v), jitted, medians over ``--reps`` calls after a
warm-up; every implementation's output is checked against a float64 NumPy reference
first. Prints a Markdown table and writes ``<out>/attention_<device>_<dtype>.json``/``.md``.

    python benchmarks/attention.py --device cpu
    python benchmarks/attention.py --device gpu --dtype bfloat16
"""

import argparse
import datetime
import functools
import json
import os
import statistics
import sys
import time

SHAPES = {"unet": (16, 256, 16, 8), "text": (32, 256, 4, 16), "wide": (8, 1024, 8, 64)}


def reference_attention(q, k, v):
    """float64 NumPy ``softmax(q k^T / sqrt(K)) v`` per head, ``[B, L, H, K]``."""
    import numpy as np
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    logits = np.einsum("blhk,bshk->bhls", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhls,bshk->blhk", weights, v)


def relative_error(out, ref) -> float:
    import numpy as np
    out = np.asarray(out, np.float64)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def median_seconds(fn, reps, sync):
    sync(fn())  # warm-up (and compile)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def jax_implementations(device):
    import jax

    from jaxdiff.models.attention import ATTENTION_CHUNK_BYTES, multi_head_attention
    # chunk_bytes="auto" (the default) is the first on CPU, the second on GPU / TPU
    impls = {"jaxdiff (4 MiB chunks)": functools.partial(multi_head_attention,
                                                         chunk_bytes=ATTENTION_CHUNK_BYTES),
             "jaxdiff (one chunk)": functools.partial(multi_head_attention, chunk_bytes=None),
             "jax.nn (xla)": lambda q, k, v: jax.nn.dot_product_attention(
                 q, k, v, implementation="xla")}
    if device == "gpu":
        impls["jax.nn (cudnn)"] = lambda q, k, v: jax.nn.dot_product_attention(
            q, k, v, implementation="cudnn")
    return impls


def time_jax(impls, shape, dtype, reps):
    import jax
    import jax.numpy as jnp
    import numpy as np
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v, g = (jax.random.normal(kk, shape, dtype) for kk in keys)
    ref = reference_attention(q.astype(jnp.float32), k.astype(jnp.float32),
                              v.astype(jnp.float32))
    rows = {}
    for name, attend in impls.items():
        forward = jax.jit(attend)
        grad = jax.jit(jax.grad(lambda q, k, v, g, f=attend: jnp.sum(
            f(q, k, v).astype(jnp.float32) * g.astype(jnp.float32)), argnums=(0, 1, 2)))
        try:
            error = relative_error(np.asarray(forward(q, k, v).astype(jnp.float32)), ref)
            rows[name] = {
                "rel_error_vs_float64": error,
                "forward_ms": 1e3 * median_seconds(lambda f=forward: f(q, k, v), reps,
                                                   jax.block_until_ready),
                "forward_backward_ms": 1e3 * median_seconds(
                    lambda f=grad: f(q, k, v, g), reps, jax.block_until_ready)}
        except Exception as err:  # e.g. cuDNN refuses a head size: report, do not hide
            rows[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    return rows


def time_torch(shape, dtype, device, reps):
    try:
        import torch
    except ImportError:
        return None
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    tdtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    torch.manual_seed(0)
    q, k, v, g = (torch.randn(*shape, device=dev, dtype=tdtype) for _ in range(4))

    def sdpa(q, k, v):  # torch wants [B, H, L, K]
        return torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    def sync(x):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return x

    def forward():
        with torch.no_grad():
            return sdpa(q, k, v)

    qr, kr, vr = (x.detach().clone().requires_grad_(True) for x in (q, k, v))

    def forward_backward():
        (sdpa(qr, kr, vr).float() * g.float()).sum().backward()
        return qr.grad

    ref = reference_attention(*(x.float().cpu().numpy() for x in (q, k, v)))
    error = relative_error(forward().float().cpu().numpy(), ref)
    return {"rel_error_vs_float64": error,
            "forward_ms": 1e3 * median_seconds(forward, reps, sync),
            "forward_backward_ms": 1e3 * median_seconds(forward_backward, reps, sync),
            "version": torch.__version__}


def markdown(result):
    lines = [f"# Attention ({result['device']}, {result['dtype']})", "",
             f"{result['timestamp']}; medians of {result['reps']} calls; error = relative "
             "L2 error of the forward output vs float64 NumPy.", "",
             "| shape [B, L, H, K] | implementation | forward ms | forward + backward ms | "
             "error |", "|---|---|---|---|---|"]
    for shape_name, rows in result["shapes"].items():
        shape = "x".join(map(str, SHAPES[shape_name]))
        for name, row in rows.items():
            if "error" in row:
                lines.append(f"| {shape_name} {shape} | {name} | - | - | {row['error']} |")
                continue
            lines.append(f"| {shape_name} {shape} | {name} | {row['forward_ms']:.3f} | "
                         f"{row['forward_backward_ms']:.3f} | "
                         f"{row['rel_error_vs_float64']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--reps", type=int, default=None, help="default 10 CPU, 100 GPU")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    reps = args.reps or (100 if args.device == "gpu" else 10)
    os.environ.setdefault("JAX_PLATFORMS", "cpu" if args.device == "cpu" else "cuda")
    import jaxdiff.perf
    jaxdiff.perf.apply_recommended_xla_flags(args.device)
    import jax
    import jax.numpy as jnp
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
    impls = jax_implementations(args.device)
    result = {"timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
              "device": f"{jax.devices()[0]} ({jax.devices()[0].device_kind})",
              "dtype": args.dtype, "reps": reps, "jax": jax.__version__, "shapes": {}}
    for shape_name in args.shapes.split(","):
        rows = time_jax(impls, SHAPES[shape_name], dtype, reps)
        torch_row = time_torch(SHAPES[shape_name], args.dtype, args.device, reps)
        if torch_row is not None:
            rows["torch sdpa"] = torch_row
        result["shapes"][shape_name] = rows
        print(f"{shape_name}: " + json.dumps(rows), flush=True)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"attention_{args.device}_{args.dtype}")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
