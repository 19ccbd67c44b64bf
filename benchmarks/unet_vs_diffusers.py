"""jaxdiff UNet vs diffusers UNet2DModel: same architecture, batch and machine, one run.

Each peer lives in its own worker process (so the two runtimes never share thread pools
and each has its own peak RSS); the parent alternates the peers every round (round r
starts with jaxdiff when r is even, with diffusers when r is odd) and only one worker
computes at a time. Measured per peer:

* train step images/s: AdamW (lr 2e-4, no weight decay), global-norm clipping at 1.0,
  EMA 0.9999, eps-prediction MSE on a linear schedule with T = 1000. jaxdiff runs
  ``jaxdiff.train.make_train_step`` + ``make_optimizer`` jitted with the state donated;
  diffusers a plain PyTorch loop (``DDPMScheduler.add_noise``, ``torch.optim.AdamW``,
  ``clip_grad_norm_``, ``torch._foreach_lerp_`` for the EMA).
* forward ms at the benchmark batch (eval mode, no gradient).
* sampling s, one jitted program (jaxdiff) or a Python loop over a scheduler (diffusers),
  the same number of network calls (NFE) on both sides (``SAMPLERS``): ``ddim`` 50
  steps (``jd.gaussian.sample(sampler="ddim")`` / ``DDIMScheduler``); ``flow_euler`` 50
  Euler steps on rectified flow (``jd.gaussian.ode_sample(solver="euler")`` /
  ``FlowMatchEulerDiscreteScheduler``); ``edm`` 35 network calls on EDM's rho = 7 sigma
  grid, preconditioned (jaxdiff: EDM's Heun with 18 steps, ``ode_sample(solver="heun")``;
  diffusers has no EDM Heun: ``EDMEulerScheduler`` with 35 steps).
* init / compile s: jaxdiff ``models.init`` (jitted initialiser, compile included), the
  lower+compile time of the train step, forward and sampler, and the first train step;
  torch: model + optimizer + EMA construction, and the first (warm-up) train step. The
  jaxdiff worker compiles into an empty persistent compilation cache (cold); after the
  rounds a second jaxdiff process repeats the setup alone and loads them (warm).
* peak memory: ``ru_maxrss`` of each worker (and RSS right after its imports); on GPU
  also the device's peak bytes.
* model FLOPs (``model_flops``): on CPU from XLA (``jit(...).lower(...).cost_analysis()``)
  for the forward and the train step, on GPU from PyTorch's ``FlopCounterMode`` (XLA:GPU
  does not count cuDNN convolutions); the same counts are used for both peers. A sampler's
  FLOPs = NFE x forward (XLA counts a scan body once). Both counts are reported.
* achieved GFLOP/s and MFU against a measured matmul peak: the best of numpy, jax and
  torch on a 2048x2048 (CPU) or 8192x8192 (GPU) matmul in the benchmark's dtype on this
  machine.

Medians over rounds; ratios are jaxdiff / diffusers. Writes
``<out>/unet_vs_diffusers_<device>.json`` and ``.md``.

    python benchmarks/unet_vs_diffusers.py --rounds 3 --device cpu
    python benchmarks/unet_vs_diffusers.py --rounds 5 --device gpu --dtype bfloat16
"""

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# diffusers' UNet2DModel arguments; jaxdiff_unet() is the same network.
DIFFUSERS_UNET = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128),
    layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))


def jaxdiff_unet():
    """The jaxdiff ``UNetConfig`` of :data:`DIFFUSERS_UNET`, read as jaxdiff reads a diffusers
    ``config.json`` (:mod:`jaxdiff.pretrained`; parity: ``tests/pretrained``): the same
    network (base 64, mults (1, 2, 2), attention at 16x16 and in the middle, 8 channels per
    head, diffusers' default GroupNorm eps and time features). Imports jaxdiff: call it in
    a worker."""
    from jaxdiff.pretrained.unet_2d import jaxdiff_config

    return jaxdiff_config(DIFFUSERS_UNET)

LEARNING_RATE, EMA_DECAY, CLIP_NORM, T_TRAIN = 2e-4, 0.9999, 1.0, 1000
DDIM_STEPS, FLOW_STEPS, EDM_HEUN_STEPS = 50, 50, 18
# sampler -> (row label, network calls per batch of samples)
SAMPLERS = {"ddim": ("DDIM 50 steps", DDIM_STEPS),
            "flow_euler": ("flow Euler 50 steps", FLOW_STEPS),
            "edm": ("EDM 35 NFE (jaxdiff Heun 18, diffusers Euler 35)", 2 * EDM_HEUN_STEPS - 1)}
MATMUL_N = {"cpu": 2048, "gpu": 8192}  # the peak matmul's size: large enough to fill the device


# ---------------------------------------------------------------- helpers (pure math)

def matmul_flops(n: int) -> int:
    """FLOPs of an ``n x n`` by ``n x n`` matmul: ``2 n^3`` (one multiply + one add)."""
    return 2 * n ** 3


def gflops_per_s(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9


def mfu(achieved_gflops: float, peak_gflops: float) -> float:
    """Model FLOPs utilisation: achieved / peak."""
    return achieved_gflops / peak_gflops


def images_per_s(batch: int, steps: int, seconds: float) -> float:
    return batch * steps / seconds


def xla_flops(compiled) -> float:
    """The ``flops`` entry of a compiled XLA executable's cost analysis."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returns one dict per device program
        cost = cost[0]
    return float(cost["flops"])


def unchunked_flops(jitted, *args) -> float:
    """XLA's FLOP count of ``jitted(*args)`` lowered with attention in one chunk.

    jaxdiff's attention runs its batch in chunks inside a ``lax.map`` (a while loop), and
    XLA's cost analysis counts a loop body once; lowering with one chunk counts every
    sequence (the arithmetic is the same). ``jitted`` must not have been traced before
    (a cached trace keeps the chunked attention).
    """
    import jaxdiff.models.attention as attention
    defaults = attention.multi_head_attention.__kwdefaults__
    saved = defaults["chunk_bytes"]
    defaults["chunk_bytes"] = None
    try:
        lowered = jitted.lower(*args)
    finally:
        defaults["chunk_bytes"] = saved
    cost = lowered.cost_analysis()
    if cost is None:  # no cost analysis of unoptimised HLO on this platform (GPU)
        return xla_flops(lowered.compile())
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])


def model_flops(device: str, jaxdiff_setup: dict, diffusers_setup: dict) -> dict:
    """FLOPs per forward call, train step and sampler (NFE x forward), the same for both
    peers.

    On CPU: XLA's cost analysis of the jaxdiff programs. XLA:GPU's cost analysis leaves out
    the convolutions (cuDNN custom calls: 6.5 of ~50 GFLOP per forward), so on GPU the counts
    are PyTorch's ``FlopCounterMode`` (matmul / convolution / attention; within 2% of XLA's
    count on CPU).
    """
    torch_forward = diffusers_setup["torch_counter_forward_flops"]
    torch_train = diffusers_setup["torch_counter_train_flops"]
    if device == "cpu":
        forward, train, source = (jaxdiff_setup["forward_flops"], jaxdiff_setup["train_flops"],
                                  "XLA cost analysis of the jaxdiff programs lowered with "
                                  "attention in one chunk")
    else:
        forward, train, source = (torch_forward, torch_train, "PyTorch FlopCounterMode; "
                                  "XLA:GPU's cost analysis omits convolutions")
    return {"forward": forward, "train": train, "source": source,
            **{name: nfe * forward for name, (_, nfe) in SAMPLERS.items()},
            "xla_forward": jaxdiff_setup["forward_flops"],
            "xla_train": jaxdiff_setup["train_flops"],
            "torch_counter_forward": torch_forward, "torch_counter_train": torch_train}


def _rss_bytes() -> int:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _num_cores() -> int:
    return len(os.sched_getaffinity(0))


# ---------------------------------------------------------------- jaxdiff worker

def jaxdiff_worker(conn, args_dict):
    args = argparse.Namespace(**args_dict)
    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    else:
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    t0 = time.perf_counter()
    import jaxdiff.perf
    if args.xla_flags == "recommended":  # before JAX initialises its backend
        jaxdiff.perf.apply_recommended_xla_flags(args.device)
    # every program is cached (threshold 0): the first worker compiles into an empty cache
    # (cold), a second one started afterwards loads them (warm)
    jaxdiff.perf.enable_compilation_cache(args.compilation_cache, min_compile_time_s=0.0)
    import jax
    import jax.numpy as jnp

    import jaxdiff as jd
    from jaxdiff.models.functional import bind, count_params, init, make_apply_fn
    from jaxdiff.tasks.gaussian import gaussian_objective
    from jaxdiff.train import create_train_state, make_optimizer, make_train_step
    info = {"import_s": time.perf_counter() - t0, "rss_after_import": _rss_bytes(),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    compute_dtype = jnp.bfloat16 if args.dtype == "bfloat16" else None
    B = args.batch
    ctx = {}

    def block(tree):
        return jax.block_until_ready(tree)

    def setup():
        config = jaxdiff_unet()
        key = jax.random.key(0)
        t = time.perf_counter()
        graphdef, params, rest = init(config, key=key)
        block(params)
        info["init_s"] = time.perf_counter() - t
        info["params"] = count_params(params)
        eval_params = jax.tree.map(jnp.copy, params)  # the train state is donated
        schedule = jd.gaussian.linear_schedule(num_steps=T_TRAIN)
        optimizer = make_optimizer(learning_rate=LEARNING_RATE, total_steps=10**6,
                                   weight_decay=0.0, clip_norm=CLIP_NORM)
        state = create_train_state(params, optimizer, jax.random.key(1))
        apply_train = make_apply_fn(graphdef, rest, train=True, compute_dtype=compute_dtype)
        apply_eval = make_apply_fn(graphdef, rest, compute_dtype=compute_dtype)
        loss_fn = gaussian_objective(apply_train, schedule, prediction="eps")
        train_step = jax.jit(make_train_step(loss_fn, optimizer, ema_decay=EMA_DECAY),
                             donate_argnums=0)
        images = jax.random.uniform(jax.random.key(2), (B, 32, 32, 3), jnp.float32, -1.0, 1.0)
        batch = {"image": images}

        t = time.perf_counter()
        train_exec = train_step.lower(state, batch).compile()
        info["train_compile_s"] = time.perf_counter() - t
        info["train_flops_compiled_loop_body_once"] = xla_flops(train_exec)
        info["train_flops"] = unchunked_flops(
            jax.jit(make_train_step(loss_fn, optimizer, ema_decay=EMA_DECAY)), state, batch)
        t = time.perf_counter()
        state, metrics = train_exec(state, batch)
        block((state, metrics))
        info["train_first_step_s"] = time.perf_counter() - t
        info["first_loss"] = float(metrics["loss"])

        fwd = jax.jit(lambda p, x, tt: apply_eval(p, x, tt))
        t_B = jnp.full((B,), 500, jnp.int32)
        t = time.perf_counter()
        fwd_exec = fwd.lower(eval_params, images, t_B).compile()
        info["forward_compile_s"] = time.perf_counter() - t
        info["forward_flops_compiled_loop_body_once"] = xla_flops(fwd_exec)
        # a fresh jit: `fwd`'s cached trace would reuse the chunked attention
        info["forward_flops"] = unchunked_flops(jax.jit(lambda p, x, tt: apply_eval(p, x, tt)),
                                                eval_params, images, t_B)
        block(fwd_exec(eval_params, images, t_B))

        shape = (B, 32, 32, 3)
        rf, ve = jd.gaussian.rectified_flow(), jd.gaussian.ve()
        programs = {
            "ddim": lambda p, k: jd.gaussian.sample(
                k, bind(apply_eval, p), schedule, shape, sampler="ddim", num_steps=DDIM_STEPS),
            "flow_euler": lambda p, k: jd.gaussian.ode_sample(
                k, jd.gaussian.with_model_time(bind(apply_eval, p), rf), rf, shape,
                solver="euler", num_steps=FLOW_STEPS, prediction="velocity"),
            "edm": lambda p, k: jd.gaussian.ode_sample(
                k, jd.gaussian.edm_denoiser(bind(apply_eval, p)), ve, shape, solver="heun",
                num_steps=EDM_HEUN_STEPS, prediction="x0")}
        samplers = {}
        for name, program in programs.items():
            t = time.perf_counter()
            samplers[name] = jax.jit(program).lower(eval_params, jax.random.key(3)).compile()
            info[f"{name}_compile_s"] = time.perf_counter() - t
        ctx.update(state=state, batch=batch, train=train_exec, fwd=fwd_exec, images=images,
                   t_B=t_B, samplers=samplers, eval_params=eval_params)
        info["device"] = f"{jax.devices()[0]} ({jax.devices()[0].device_kind})"
        import jaxlib
        info["versions"] = {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                            "jaxdiff": jd.__version__}
        try:
            import flax
            import optax
            info["versions"].update(flax=flax.__version__, optax=optax.__version__)
        except ImportError:
            pass
        return info

    def run_train(n):
        state = ctx["state"]
        t = time.perf_counter()
        for _ in range(n):
            state, metrics = ctx["train"](state, ctx["batch"])
        block((state, metrics))
        dt = time.perf_counter() - t
        ctx["state"] = state
        return {"seconds": dt, "steps": n, "loss": float(metrics["loss"])}

    def run_forward(n):
        out = None
        t = time.perf_counter()
        for _ in range(n):
            out = ctx["fwd"](ctx["eval_params"], ctx["images"], ctx["t_B"])
        block(out)
        return {"seconds": time.perf_counter() - t, "calls": n}

    def run_sample(arg):
        name, seed = arg
        t = time.perf_counter()
        x = block(ctx["samplers"][name](ctx["eval_params"], jax.random.key(100 + seed)))
        seconds = time.perf_counter() - t
        # the same number of forward calls as the sampler, back to back, right after it
        t = time.perf_counter()
        for _ in range(SAMPLERS[name][1]):
            out = ctx["fwd"](ctx["eval_params"], ctx["images"], ctx["t_B"])
        block(out)
        return {"seconds": seconds, "finite": bool(jnp.isfinite(x).all()),
                "forwards_seconds": time.perf_counter() - t}

    def run_matmul(reps):
        dtype = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
        n = MATMUL_N[args.device]
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype)
        mm = jax.jit(jnp.matmul)
        block(mm(a, b))
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            block(mm(a, b))
            best = min(best, time.perf_counter() - t)
        return {"best_s": best, "gflops": gflops_per_s(matmul_flops(n), best)}

    def memory():
        mem = {"peak_rss": _peak_rss_bytes(), "rss_after_import": info["rss_after_import"],
               "rss_now": _rss_bytes()}
        if args.device == "gpu":
            stats = jax.devices()[0].memory_stats() or {}
            mem["device_peak_bytes"] = stats.get("peak_bytes_in_use")
        return mem

    _serve(conn, {"setup": setup, "train": run_train, "forward": run_forward,
                  "sample": run_sample, "matmul": run_matmul, "memory": memory})


# ---------------------------------------------------------------- diffusers worker

def diffusers_worker(conn, args_dict):
    args = argparse.Namespace(**args_dict)
    t0 = time.perf_counter()
    import contextlib

    import diffusers
    import torch
    import torch.nn.functional as F
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        EDMEulerScheduler,
        FlowMatchEulerDiscreteScheduler,
        UNet2DModel,
    )
    info = {"import_s": time.perf_counter() - t0, "rss_after_import": _rss_bytes()}
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    if args.device == "cpu":
        torch.set_num_threads(_num_cores())
    info["torch_threads"] = torch.get_num_threads()
    B = args.batch
    bf16 = args.dtype == "bfloat16"
    ctx = {}

    def autocast():
        if bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def setup():
        torch.manual_seed(0)
        t = time.perf_counter()
        model = UNet2DModel(**DIFFUSERS_UNET).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                      betas=(0.9, 0.999), weight_decay=0.0)
        ema = [p.detach().clone() for p in model.parameters()]
        sync()
        info["init_s"] = time.perf_counter() - t
        info["params"] = sum(p.numel() for p in model.parameters())
        noise_scheduler = DDPMScheduler(num_train_timesteps=T_TRAIN, beta_schedule="linear")
        images = torch.rand(B, 3, 32, 32, device=device) * 2 - 1
        params = list(model.parameters())

        def train_step():
            noise = torch.randn_like(images)
            t_B = torch.randint(0, T_TRAIN, (B,), device=device)
            x_t = noise_scheduler.add_noise(images, noise, t_B)
            with autocast():
                pred = model(x_t, t_B).sample
            loss = F.mse_loss(pred.float(), noise)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
            optimizer.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - EMA_DECAY)
            return loss

        model.train()
        t = time.perf_counter()
        loss = train_step()
        sync()
        info["train_first_step_s"] = time.perf_counter() - t
        info["first_loss"] = loss.item()
        t_fwd = torch.full((B,), 500, device=device, dtype=torch.long)

        # PyTorch's own FLOP count (matmul, conv, attention only): a cross-check of XLA's.
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            with torch.no_grad(), autocast():
                model(images, t_fwd)
        info["torch_counter_forward_flops"] = int(counter.get_total_flops())
        with FlopCounterMode(display=False) as counter:
            with autocast():
                out = model(images, t_fwd).sample
            out.float().square().mean().backward()
        info["torch_counter_train_flops"] = int(counter.get_total_flops())
        optimizer.zero_grad(set_to_none=True)

        schedulers = {
            "ddim": (DDIMScheduler(num_train_timesteps=T_TRAIN, beta_schedule="linear",
                                   clip_sample=False), DDIM_STEPS),
            "flow_euler": (FlowMatchEulerDiscreteScheduler(num_train_timesteps=T_TRAIN),
                           FLOW_STEPS),
            "edm": (EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5),
                    SAMPLERS["edm"][1])}
        ctx.update(model=model, train_step=train_step, images=images, t_fwd=t_fwd,
                   schedulers=schedulers)
        info["device"] = str(device) + (f" ({torch.cuda.get_device_name()})"
                                        if device.type == "cuda" else "")
        info["versions"] = {"torch": torch.__version__, "diffusers": diffusers.__version__}
        return info

    def run_train(n):
        ctx["model"].train()
        sync()
        t = time.perf_counter()
        for _ in range(n):
            loss = ctx["train_step"]()
        sync()
        return {"seconds": time.perf_counter() - t, "steps": n, "loss": loss.item()}

    def run_forward(n):
        model = ctx["model"].eval()
        sync()
        t = time.perf_counter()
        with torch.inference_mode(), autocast():
            for _ in range(n):
                model(ctx["images"], ctx["t_fwd"])
        sync()
        return {"seconds": time.perf_counter() - t, "calls": n}

    def run_sample(arg):
        """The scheduler's documented loop: scale the input (EDM's c_in; identity or absent
        for the others), call the network, step."""
        name, seed = arg
        model, (scheduler, steps) = ctx["model"].eval(), ctx["schedulers"][name]
        generator = torch.Generator(device=device).manual_seed(100 + seed)
        sync()
        t = time.perf_counter()
        scheduler.set_timesteps(steps, device=device)
        x = torch.randn(B, 3, 32, 32, generator=generator, device=device)
        x = x * getattr(scheduler, "init_noise_sigma", 1.0)   # flow matching's is 1
        scale = getattr(scheduler, "scale_model_input", lambda x, step: x)
        with torch.inference_mode():
            for step in scheduler.timesteps:
                with autocast():
                    out = model(scale(x, step), step).sample
                x = scheduler.step(out.float(), step, x).prev_sample
        sync()
        return {"seconds": time.perf_counter() - t, "finite": bool(torch.isfinite(x).all())}

    def run_matmul(reps):
        dtype = torch.bfloat16 if bf16 else torch.float32
        n = MATMUL_N[args.device]
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        torch.mm(a, b)
        sync()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            torch.mm(a, b)
            sync()
            best = min(best, time.perf_counter() - t)
        return {"best_s": best, "gflops": gflops_per_s(matmul_flops(n), best)}

    def memory():
        mem = {"peak_rss": _peak_rss_bytes(), "rss_after_import": info["rss_after_import"],
               "rss_now": _rss_bytes()}
        if device.type == "cuda":
            mem["device_peak_bytes"] = int(torch.cuda.max_memory_allocated())
        return mem

    _serve(conn, {"setup": setup, "train": run_train, "forward": run_forward,
                  "sample": run_sample, "matmul": run_matmul, "memory": memory})


def _serve(conn, handlers):
    while True:
        command, arg = conn.recv()
        if command == "stop":
            conn.close()
            return
        try:
            result = handlers[command]() if arg is None else handlers[command](arg)
            conn.send(("ok", result))
        except Exception as err:  # report to the parent instead of hanging it
            import traceback
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))


class Peer:
    def __init__(self, name, target, args):
        self.name = name
        parent, child = mp.get_context("spawn").Pipe()
        self.conn = parent
        self.process = mp.get_context("spawn").Process(target=target, args=(child, vars(args)),
                                                       daemon=True)
        self.process.start()

    def call(self, command, arg=None):
        self.conn.send((command, arg))
        status, result = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"{self.name} worker failed on {command}: {result}")
        return result

    def stop(self):
        self.conn.send(("stop", None))
        self.process.join(timeout=30)


# ---------------------------------------------------------------- parent

def numpy_matmul(reps, dtype, device):
    import numpy as np
    if dtype != "float32" or device != "cpu":
        return None  # numpy has no bfloat16 matmul and runs on the CPU only
    n = MATMUL_N[device]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return {"best_s": best, "gflops": gflops_per_s(matmul_flops(n), best)}


def machine_info():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": _num_cores(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        info["loadavg_at_start"] = os.getloadavg()
    except OSError:
        pass
    try:
        info["jaxdiff_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
            cwd=os.path.dirname(os.path.abspath(__file__)), check=False).stdout.strip()
    except OSError:
        pass
    return info


def summarize(raw, flops, peak_gflops, batch):
    """Medians over rounds and derived throughput for one peer; ``raw["sample"][name]`` holds
    each sampler's rounds."""
    train_s = [r["seconds"] / r["steps"] for r in raw["train"]]
    fwd_s = [r["seconds"] / r["calls"] for r in raw["forward"]]
    step_s, forward_s = statistics.median(train_s), statistics.median(fwd_s)
    train_gflops = gflops_per_s(flops["train"], step_s)
    forward_gflops = gflops_per_s(flops["forward"], forward_s)
    out = {
        "train_images_per_s": images_per_s(batch, 1, step_s),
        "train_step_ms": 1e3 * step_s,
        "forward_ms": 1e3 * forward_s,
        "train_gflops_per_s": train_gflops,
        "forward_gflops_per_s": forward_gflops,
        "train_mfu": mfu(train_gflops, peak_gflops),
        "forward_mfu": mfu(forward_gflops, peak_gflops),
        "per_round": {"train_step_s": train_s, "forward_s": fwd_s},
    }
    for name, rounds in raw["sample"].items():
        seconds = statistics.median(r["seconds"] for r in rounds)
        gflops = gflops_per_s(flops[name], seconds)
        # the sampler (one lax.scan) over as many back-to-back forward calls, timed right
        # after it (jaxdiff only)
        timed = [r["seconds"] / r["forwards_seconds"] for r in rounds if "forwards_seconds" in r]
        out.update({f"{name}_s": seconds, f"{name}_gflops_per_s": gflops,
                    f"{name}_mfu": mfu(gflops, peak_gflops),
                    f"{name}_over_forwards": statistics.median(timed) if timed else None})
        out["per_round"][f"{name}_s"] = [r["seconds"] for r in rounds]
    return out


def _sampler_rows():
    rows = []
    for name, (label, nfe) in SAMPLERS.items():
        rows += [(f"{name}_s", f"{label} s (batch {{B}})", "{:.2f}", "lower"),
                 (f"{name}_gflops_per_s", f"{label} GFLOP/s", "{:.1f}", "higher"),
                 (f"{name}_over_forwards", f"{label}: time / {nfe} forward calls (jaxdiff: "
                  f"1 = no sampler overhead)", "{:.3f}", "lower")]
    return rows


ROWS = [  # (key, label, format, better)
    ("train_images_per_s", "train images/s", "{:.1f}", "higher"),
    ("train_step_ms", "train step ms", "{:.0f}", "lower"),
    ("forward_ms", "forward ms (batch {B})", "{:.1f}", "lower"),
    *_sampler_rows(),
    ("train_gflops_per_s", "train GFLOP/s", "{:.1f}", "higher"),
    ("forward_gflops_per_s", "forward GFLOP/s", "{:.1f}", "higher"),
    ("train_mfu", "train MFU", "{:.1%}", "higher"),
    ("forward_mfu", "forward MFU", "{:.1%}", "higher"),
    ("init_s", "init s (jaxdiff: jitted init incl. compile; torch: construction)", "{:.2f}",
     "lower"),
    ("train_first_step_s", "first train step s (after compile)", "{:.2f}", "lower"),
    ("compile_total_s", "compile s (train + forward + samplers, jaxdiff only)", "{:.1f}",
     "lower"),
    ("init_train_compile_s", "init + train-step compile s, cold (empty compilation cache)",
     "{:.1f}", "lower"),
    ("warm_init_train_compile_s", "init + train-step compile s, warm (a new process, "
     "persistent compilation cache)", "{:.1f}", "lower"),
    ("peak_rss_mib", "peak RSS MiB (worker process)", "{:.0f}", "lower"),
    ("rss_after_import_mib", "RSS after imports MiB", "{:.0f}", "lower"),
    ("device_peak_mib", "device peak MiB", "{:.0f}", "lower"),
]


def _fmt_load(load):
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


def markdown(result):
    B = result["config"]["batch"]
    j, d = result["peers"]["jaxdiff"], result["peers"]["diffusers"]
    m, f = result["machine"], result["flops"]
    lines = [
        f"# jaxdiff vs diffusers UNet ({result['config']['device']}, "
        f"{result['config']['dtype']}, batch {B})",
        "",
        f"{result['timestamp']}; {m['cpu']}, {m['cores']} cores; load average (1, 5, 15 min) "
        f"at start {_fmt_load(m.get('loadavg_at_start'))}, at end "
        f"{_fmt_load(m.get('loadavg_at_end'))}; rounds: "
        f"{result['config']['rounds']} (samplers: {result['config']['sample_rounds']}), peers "
        f"alternated each round; medians; ratio = jaxdiff / diffusers; wall "
        f"{result['wall_s']:.0f} s. Devices: jaxdiff {j['device']}, diffusers {d['device']}.",
        "",
        "| metric | jaxdiff | diffusers | ratio | better |",
        "|---|---|---|---|---|",
    ]
    for key, label, fmt, better in ROWS:
        a, b = j.get(key), d.get(key)
        if a is None and b is None:
            continue
        ratio = result["ratios"].get(key)
        lines.append("| {} | {} | {} | {} | {} |".format(
            label.format(B=B), "-" if a is None else fmt.format(a),
            "-" if b is None else fmt.format(b),
            "-" if ratio is None else f"{ratio:.2f}", better))
    lines += [
        "",
        f"Parameters: jaxdiff {j['params']:,}, diffusers {d['params']:,}. "
        f"FLOPs per call ({f['source']}; used for both peers): "
        f"forward {f['forward'] / 1e9:.2f} GFLOP, train step {f['train'] / 1e9:.2f} GFLOP, "
        + ", ".join(f"{label} {f[name] / 1e9:.1f} GFLOP ({nfe} x forward)"
                    for name, (label, nfe) in SAMPLERS.items())
        + ". XLA's count: forward "
        f"{f['xla_forward'] / 1e9:.2f}, train step {f['xla_train'] / 1e9:.2f} GFLOP; "
        f"PyTorch FlopCounterMode (matmul/conv/attention only): forward "
        f"{f['torch_counter_forward'] / 1e9:.2f}, forward+backward "
        f"{f['torch_counter_train'] / 1e9:.2f} GFLOP.",
        "",
        "Matmul peak ({n}x{n}, {dt}): ".format(n=MATMUL_N[result["config"]["device"]],
                                               dt=result["config"]["dtype"])
        + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in result["matmul"].items() if v)
        + f" GFLOP/s; MFU uses the best, {result['peak_gflops']:.1f} GFLOP/s.",
        "",
        f"jaxdiff worker XLA_FLAGS: `{j.get('xla_flags') or '(none)'}` "
        f"(`--xla-flags {result['config']['xla_flags']}`).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in {**j["versions"], **d["versions"]}.items()
                                 if v) + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample-rounds", type=int, default=None,
                        help="rounds that also time the samplers (default: all)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="timed train steps per round (default 8 on CPU, 50 on GPU)")
    parser.add_argument("--forward-calls", type=int, default=None,
                        help="timed forward calls per round (default 10 on CPU, 100 on GPU)")
    parser.add_argument("--matmul-reps", type=int, default=5)
    parser.add_argument("--xla-flags", choices=("recommended", "default"), default="recommended",
                        help="jaxdiff worker: add jaxdiff.perf's recommended XLA_FLAGS (never "
                        "overriding flags already set) or run with XLA's defaults")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    gpu = args.device == "gpu"
    args.train_steps = args.train_steps or (50 if gpu else 8)
    args.forward_calls = args.forward_calls or (100 if gpu else 10)
    args.sample_rounds = min(args.sample_rounds or args.rounds, args.rounds)
    wall0 = time.perf_counter()
    machine = machine_info()

    def log(msg):
        print(f"[{time.perf_counter() - wall0:6.1f}s] {msg}", flush=True)

    args.compilation_cache = tempfile.mkdtemp(prefix="jaxdiff_bench_xla_cache_")
    peers = {"jaxdiff": Peer("jaxdiff", jaxdiff_worker, args),
             "diffusers": Peer("diffusers", diffusers_worker, args)}
    setup, raw = {}, {name: {"train": [], "forward": [], "sample": {s: [] for s in SAMPLERS}}
                      for name in peers}
    try:
        for name, peer in peers.items():  # one at a time: no contention during compile
            setup[name] = peer.call("setup")
            shown = {k: v for k, v in setup[name].items() if k != "versions"}
            log(f"{name} setup: {json.dumps(shown)}")
        matmul = {"numpy": numpy_matmul(args.matmul_reps, args.dtype, args.device),
                  "jax": peers["jaxdiff"].call("matmul", args.matmul_reps),
                  "torch": peers["diffusers"].call("matmul", args.matmul_reps)}
        log("matmul GFLOP/s: " + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in matmul.items()
                                           if v))
        for r in range(args.rounds):
            order = list(peers) if r % 2 == 0 else list(reversed(peers))
            for name in order:
                raw[name]["train"].append(peers[name].call("train", args.train_steps))
                raw[name]["forward"].append(peers[name].call("forward", args.forward_calls))
                timed = []
                if r < args.sample_rounds:
                    for sampler, rounds in raw[name]["sample"].items():
                        rounds.append(peers[name].call("sample", (sampler, r)))
                        timed.append(f"{sampler} {rounds[-1]['seconds']:.2f}s")
                log(f"round {r} {name}: train {raw[name]['train'][-1]['seconds']:.2f}s / "
                    f"{args.train_steps}, forward {raw[name]['forward'][-1]['seconds']:.2f}s / "
                    f"{args.forward_calls}" + "".join(f", {t}" for t in timed))
        memory = {name: peer.call("memory") for name, peer in peers.items()}
        try:
            machine["loadavg_at_end"] = os.getloadavg()
        except OSError:
            pass
    finally:
        for peer in peers.values():
            try:
                peer.stop()
            except (OSError, EOFError):
                pass
    warm_peer = Peer("jaxdiff-warm", jaxdiff_worker, args)  # alone: the others have stopped
    try:
        warm = warm_peer.call("setup")
        log(f"jaxdiff warm start: init {warm['init_s']:.2f}s, train compile "
            f"{warm['train_compile_s']:.2f}s")
    finally:
        warm_peer.stop()
        shutil.rmtree(args.compilation_cache, ignore_errors=True)

    flops = model_flops(args.device, setup["jaxdiff"], setup["diffusers"])
    peak = max(v["gflops"] for v in matmul.values() if v)
    mib = 2.0 ** 20
    results = {}
    for name in peers:
        s, mem = setup[name], memory[name]
        summary = summarize(raw[name], flops, peak, args.batch)
        summary.update(
            params=s["params"], device=s["device"], versions=s["versions"],
            xla_flags=s.get("xla_flags"),
            init_s=s["init_s"], import_s=s["import_s"],
            train_first_step_s=s["train_first_step_s"], first_loss=s["first_loss"],
            peak_rss_mib=mem["peak_rss"] / mib, rss_after_import_mib=mem["rss_after_import"] / mib,
            device_peak_mib=(mem["device_peak_bytes"] / mib
                             if mem.get("device_peak_bytes") else None),
            losses=[t["loss"] for t in raw[name]["train"]],
            samples_finite={k: all(x["finite"] for x in v)
                            for k, v in raw[name]["sample"].items()})
        if name == "jaxdiff":
            compiles = ("train_compile_s", "forward_compile_s",
                        *(f"{k}_compile_s" for k in SAMPLERS))
            summary.update({k: s[k] for k in compiles})
            summary["compile_total_s"] = sum(s[k] for k in compiles)
            summary["init_train_compile_s"] = s["init_s"] + s["train_compile_s"]
            summary["warm_init_train_compile_s"] = warm["init_s"] + warm["train_compile_s"]
            summary["warm_start"] = {k: warm[k] for k in ("init_s", *compiles)}
        else:
            summary["torch_threads"] = s["torch_threads"]
        results[name] = summary
    ratios = {}
    for key, *_ in ROWS:
        a, b = results["jaxdiff"].get(key), results["diffusers"].get(key)
        if a is not None and b:
            ratios[key] = a / b
    result = {
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": {**vars(args), "diffusers_unet": DIFFUSERS_UNET,
                   "learning_rate": LEARNING_RATE, "ema_decay": EMA_DECAY,
                   "clip_norm": CLIP_NORM, "train_timesteps": T_TRAIN,
                   "samplers": {k: {"label": label, "nfe": nfe}
                                for k, (label, nfe) in SAMPLERS.items()}},
        "machine": machine, "matmul": matmul, "peak_gflops": peak, "flops": flops,
        "peers": results, "ratios": ratios, "wall_s": time.perf_counter() - wall0,
    }
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"unet_vs_diffusers_{args.device}")
    if args.dtype != "float32":
        stem += f"_{args.dtype}"
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))
    log(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    sys.exit(main())
