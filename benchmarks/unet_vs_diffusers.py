"""jaxdiff vs diffusers on the same network, batch and machine, in one run.

``--model`` picks the network (:data:`MODELS`): ``unet_small`` (the default: a 6.5M UNet,
diffusers' ``UNet2DModel`` with :data:`DIFFUSERS_UNET`), ``ddpm_cifar10`` (jaxdiff's preset,
Ho et al.'s 35.7M CIFAR-10 UNet = ``UNet2DModel`` with google/ddpm-cifar10-32's config) or
``dit_b2`` (jaxdiff's preset, DiT-B/2 on 32x32x4 latents, class-conditional =
``DiTTransformer2DModel``). The diffusers network is always the jaxdiff config exported by
the repo's own mapping (:func:`diffusers_network`, ``jaxdiff.pretrained``), so the two peers
run the same architecture.

Each peer lives in its own worker process (so the two runtimes never share thread pools
and each has its own peak RSS); the parent alternates the peers every round (round r
starts with jaxdiff when r is even, with diffusers when r is odd) and only one worker
computes at a time. Measured per peer:

* train step images/s: AdamW (lr 2e-4, no weight decay), global-norm clipping at 1.0,
  EMA 0.9999, eps-prediction MSE on a linear schedule with T = 1000 (a learned-variance
  network's variance half is computed, not trained; a class-conditional one gets random
  labels, dropped to the null class at rate 0.1 as diffusers' DiT does in train mode).
  jaxdiff runs ``jaxdiff.train.make_train_step`` + ``make_optimizer`` jitted with the state
  donated; diffusers a plain PyTorch loop (``DDPMScheduler.add_noise``,
  ``torch.optim.AdamW``, ``clip_grad_norm_``, ``torch._foreach_lerp_`` for the EMA).
* forward ms at the benchmark batch (eval mode, no gradient).
* sampling s, one jitted program (jaxdiff) or a Python loop over a scheduler (diffusers),
  the same number of network calls (NFE) on both sides (``SAMPLERS``; ``--samplers``
  picks, each model has its default): ``ddim`` 50 steps (``jd.gaussian.sample(sampler=
  "ddim")`` / ``DDIMScheduler``); ``flow_euler`` 50 Euler steps on rectified flow
  (``jd.gaussian.ode_sample(solver="euler")`` / ``FlowMatchEulerDiscreteScheduler``);
  ``edm`` 35 network calls on EDM's rho = 7 sigma grid, preconditioned (jaxdiff: EDM's Heun
  with 18 steps, ``ode_sample(solver="heun")``; diffusers has no EDM Heun:
  ``EDMEulerScheduler`` with 35 steps). No classifier-free guidance (one call per step).
* init / compile s: jaxdiff ``models.init`` (jitted initialiser, compile included), the
  lower+compile time of the train step, forward and sampler, and the first train step;
  torch: model + optimizer + EMA construction, and the first (warm-up) train step. The
  jaxdiff worker compiles into an empty persistent compilation cache (cold); after the
  rounds a second jaxdiff process repeats the setup alone and loads them (warm; skipped
  with ``--no-warm-start``).
* peak memory: ``ru_maxrss`` of each worker (and RSS right after its imports); on GPU
  also the device's peak bytes.
* model FLOPs (``model_flops``): on CPU from XLA (``jit(...).lower(...).cost_analysis()``)
  for the forward and the train step, on GPU from PyTorch's ``FlopCounterMode`` (XLA:GPU
  does not count cuDNN convolutions); the same counts are used for both peers. A sampler's
  FLOPs = NFE x forward (XLA counts a scan body once). Both counts are reported.
* achieved GFLOP/s and MFU against a measured matmul peak: the best of numpy, jax and
  torch on a 2048x2048 (CPU) or 8192x8192 (GPU) matmul in the benchmark's dtype on this
  machine; and MFU against the chip's datasheet peak (``--peak-tflops``, or on a GPU
  :data:`DATASHEET_TFLOPS` by jax's ``device_kind``; None where neither gives one).

Medians over rounds; ratios are jaxdiff / diffusers. Writes
``<out>/<stem>_<device>[_bfloat16].json`` and ``.md`` (:func:`result_stem`:
``unet_vs_diffusers`` for ``unet_small``, ``<model>_vs_diffusers`` otherwise).

    python benchmarks/unet_vs_diffusers.py --rounds 3 --device cpu
    python benchmarks/unet_vs_diffusers.py --rounds 5 --device gpu --dtype bfloat16
    benchmarks/gpu_papers_sizes.sh    # ddpm_cifar10 at batch 128, dit_b2 at 256, bf16, GPU
"""

import argparse
import dataclasses
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

# diffusers' UNet2DModel arguments of the unet_small network; jaxdiff_unet() reads them.
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


@dataclasses.dataclass(frozen=True)
class BenchModel:
    """One ``--model``: a jaxdiff network and how the benchmark runs it.

    Attributes:
      title: what the tables call it.
      preset: the jaxdiff preset (:func:`jaxdiff.models.preset_config`), or None for
        :func:`jaxdiff_unet`.
      overrides: preset fields replaced so that diffusers' class can be the same network
        (fields without effect on the FLOPs: see ``jaxdiff.pretrained``'s mappings).
      samplers: the default ``--samplers``.
      tiny: the fields ``--tiny`` replaces (a few channels, one block; a UNet of one level,
        as XLA:CPU takes 20 s to compile a two-level one's train step: tests on a CPU).
    """

    title: str
    preset: str | None
    overrides: dict
    samplers: tuple[str, ...]
    tiny: dict


MODELS = {
    "unet_small": BenchModel("UNet", None, {}, ("ddim", "flow_euler", "edm"),
                             dict(base_channels=16, num_res_blocks=1, num_groups=8)),
    # google/ddpm-cifar10-32's config has no dropout (diffusers' default 0; the paper's 0.1)
    "ddpm_cifar10": BenchModel("DDPM CIFAR-10 UNet", "ddpm_cifar10", {"dropout": 0.0},
                               ("ddim", "flow_euler", "edm"),
                               dict(base_channels=16, channel_mults=(1,), attention_levels=(0,),
                                    num_res_blocks=1, num_groups=8)),
    # diffusers' DiT shifts the timestep frequencies by 1 (the DiT code by 0)
    "dit_b2": BenchModel("DiT-B/2", "dit_b2", {"timestep_freq_shift": 1.0},
                         ("ddim", "flow_euler"), dict(hidden_size=64, depth=1, num_heads=2)),
}


def jaxdiff_network(model: str, tiny: bool = False):
    """The jaxdiff config of ``--model`` ``model`` (with its ``tiny`` fields if asked).
    Imports jaxdiff: call it in a worker."""
    from jaxdiff.models.presets import preset_config

    spec = MODELS[model]
    config = (jaxdiff_unet() if spec.preset is None
              else preset_config(spec.preset, **spec.overrides))
    return dataclasses.replace(config, **spec.tiny) if tiny else config


def diffusers_network(config) -> dict:
    """What the diffusers worker builds for a jaxdiff ``config``: ``diffusers_config``, the
    ``config.json`` of the same network by the repo's export mapping
    (:mod:`jaxdiff.pretrained.unet_2d` / :mod:`~jaxdiff.pretrained.dit_2d`), the input
    ``image_shape`` (H, W, C) and ``num_classes`` (None: unconditional)."""
    from jaxdiff.models.dit import DiTConfig
    from jaxdiff.pretrained import dit_2d, unet_2d

    export = dit_2d if isinstance(config, DiTConfig) else unet_2d
    return {"diffusers_config": export.diffusers_config(config),
            "image_shape": (config.image_size, config.image_size, config.in_channels),
            "num_classes": config.num_classes}


def result_stem(model: str, device: str, dtype: str, tiny: bool = False) -> str:
    """The result files' name without extension: ``unet_vs_diffusers_<device>`` for
    ``unet_small`` (the name its results always had), ``<model>_vs_diffusers_<device>``
    otherwise, then ``_<dtype>`` unless float32 and ``_tiny`` for a ``--tiny`` run."""
    stem = "unet" if model == "unet_small" else model
    stem += f"_vs_diffusers_{device}"
    if dtype != "float32":
        stem += f"_{dtype}"
    return stem + ("_tiny" if tiny else "")


LEARNING_RATE, EMA_DECAY, CLIP_NORM, T_TRAIN = 2e-4, 0.9999, 1.0, 1000
DDIM_STEPS, FLOW_STEPS, EDM_HEUN_STEPS = 50, 50, 18
# sampler -> (row label, network calls per batch of samples)
SAMPLERS = {"ddim": ("DDIM 50 steps", DDIM_STEPS),
            "flow_euler": ("flow Euler 50 steps", FLOW_STEPS),
            "edm": ("EDM 35 NFE (jaxdiff Heun 18, diffusers Euler 35)", 2 * EDM_HEUN_STEPS - 1)}
MATMUL_N = {"cpu": 2048, "gpu": 8192}  # the peak matmul's size: large enough to fill the device
# a class-conditional network's labels go to the null class at this rate in training: each
# block of diffusers' DiT does it in train mode (CombinedTimestepLabelEmbeddings' default)
LABEL_DROPOUT = 0.1

# Dense (no structured sparsity) tensor-core peaks in TFLOP/s, from NVIDIA's datasheets
# (H100 / H200 SXM: BF16 989.4, TF32 494.7; H100 PCIe: 756.5 / 378; A100 SXM4 and PCIe: 312 /
# 156; the sheets print twice these "with sparsity"). float32 is held against the TF32
# peak: JAX's default matmul precision on these GPUs is TF32. (substring of jax's
# device_kind, {dtype: TFLOP/s} or None), first match wins; NVL boards (lower clocks) and
# every other chip are not tabulated: give --peak-tflops.
DATASHEET_TFLOPS = (
    ("NVL", None),
    ("H100 PCIe", {"bfloat16": 756.5, "float32": 378.0}),
    ("H100", {"bfloat16": 989.4, "float32": 494.7}),
    ("H200", {"bfloat16": 989.4, "float32": 494.7}),
    ("A100", {"bfloat16": 312.0, "float32": 156.0}),
)


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


def datasheet_tflops(device_kind: str, dtype: str) -> float | None:
    """The chip's dense peak in ``dtype`` from :data:`DATASHEET_TFLOPS`, None if untabulated."""
    for pattern, peaks in DATASHEET_TFLOPS:
        if pattern.lower() in device_kind.lower():
            return None if peaks is None else peaks[dtype]
    return None


def datasheet_peak(peak_tflops: float | None, device_kind: str, dtype: str) -> dict:
    """The datasheet peak MFU is held against: ``--peak-tflops`` if given, else the table's
    entry for ``device_kind``; ``tflops`` None (MFU not available) when neither has one."""
    if peak_tflops is not None:
        return {"tflops": peak_tflops, "source": "--peak-tflops", "device_kind": device_kind}
    tflops = datasheet_tflops(device_kind, dtype)
    source = (f"NVIDIA datasheet, dense {dtype} ({'TF32' if dtype == 'float32' else 'BF16'} "
              f"tensor cores)" if tflops else None)
    return {"tflops": tflops, "source": source, "device_kind": device_kind}


def mfu_or_none(achieved_gflops: float, peak_gflops: float | None) -> float | None:
    """:func:`mfu`, or None without a peak."""
    return None if peak_gflops is None else mfu(achieved_gflops, peak_gflops)


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


def model_flops(device: str, jaxdiff_setup: dict, diffusers_setup: dict,
                samplers=tuple(SAMPLERS)) -> dict:
    """FLOPs per forward call, train step and each of ``samplers`` (NFE x forward), the same
    for both peers.

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
            **{name: SAMPLERS[name][1] * forward for name in samplers},
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

def prediction_half(apply_fn, config):
    """``apply_fn(params, x_t, t, cond, key)`` of the prediction only: a learned-variance
    network's variance half (its last ``in_channels`` outputs) cut off, as both peers train
    and sample it."""
    if not config.learned_variance:
        return apply_fn
    channels = config.in_channels

    def predict(params, x_t, t, cond=None, key=None):
        return apply_fn(params, x_t, t, cond, key)[..., :channels]

    return predict


def jaxdiff_samplers(apply_eval, schedule, shape, cond, names) -> dict:
    """The sampling programs ``program(params, key)`` of ``names`` (:data:`SAMPLERS`) for an
    eval-mode ``apply_eval`` on images of ``shape``, conditioned on ``cond``."""
    import jaxdiff as jd
    from jaxdiff.models.functional import bind

    rf, ve = jd.gaussian.rectified_flow(), jd.gaussian.ve()
    programs = {
        "ddim": lambda p, k: jd.gaussian.sample(
            k, bind(apply_eval, p), schedule, shape, sampler="ddim", num_steps=DDIM_STEPS,
            cond=cond),
        "flow_euler": lambda p, k: jd.gaussian.ode_sample(
            k, jd.gaussian.with_model_time(bind(apply_eval, p), rf), rf, shape,
            solver="euler", num_steps=FLOW_STEPS, prediction="velocity", cond=cond),
        "edm": lambda p, k: jd.gaussian.ode_sample(
            k, jd.gaussian.edm_denoiser(bind(apply_eval, p)), ve, shape, solver="heun",
            num_steps=EDM_HEUN_STEPS, prediction="x0", cond=cond)}
    return {name: programs[name] for name in names}


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
    from jaxdiff.models.functional import count_params, init, make_apply_fn
    from jaxdiff.tasks.conditions import class_conditions
    from jaxdiff.tasks.gaussian import gaussian_objective
    from jaxdiff.train import create_train_state, make_optimizer, make_train_step
    info = {"import_s": time.perf_counter() - t0, "rss_after_import": _rss_bytes(),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    compute_dtype = jnp.bfloat16 if args.dtype == "bfloat16" else None
    B = args.batch
    ctx = {}

    def block(tree):
        return jax.block_until_ready(tree)

    def describe():
        device = jax.devices()[0]
        info.update(device=f"{device} ({device.device_kind})", device_kind=device.device_kind)
        missing = (f"jax {jax.__version__} sees no GPU (its devices: {jax.devices()}; install "
                   f"a CUDA jaxlib of this jax version)"
                   if args.device == "gpu" and device.platform != "gpu" else None)
        return {"device": info["device"], "device_kind": device.device_kind,
                "missing_gpu": missing}

    def total_flops(compiled, fresh_jit, *inputs):
        """XLA's FLOPs of every attention chunk (:func:`unchunked_flops`, a fresh jit); on
        GPU attention runs in one chunk already: the compiled program's count (a second
        compile would take minutes at the papers' sizes)."""
        if args.device == "gpu":
            return xla_flops(compiled)
        return unchunked_flops(fresh_jit, *inputs)

    def setup():
        config = jaxdiff_network(args.model, args.tiny)
        info.update(diffusers_network(config))
        shape = (B, *info["image_shape"])
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
        apply_train = prediction_half(
            make_apply_fn(graphdef, rest, train=True, compute_dtype=compute_dtype), config)
        apply_eval = prediction_half(make_apply_fn(graphdef, rest, compute_dtype=compute_dtype),
                                     config)
        conditions = class_conditions(config.num_classes)
        loss_fn = gaussian_objective(
            apply_train, schedule, prediction="eps", conditions=conditions,
            label_dropout=LABEL_DROPOUT if conditions.conditional else 0.0)
        images = jax.random.uniform(jax.random.key(2), shape, jnp.float32, -1.0, 1.0)
        labels = (None if config.num_classes is None
                  else jax.random.randint(jax.random.key(4), (B,), 0, config.num_classes))
        batch = {"image": images, **({} if labels is None else {"label": labels})}

        def train_step():
            return make_train_step(loss_fn, optimizer, ema_decay=EMA_DECAY)

        t = time.perf_counter()
        train_exec = jax.jit(train_step(), donate_argnums=0).lower(state, batch).compile()
        info["train_compile_s"] = time.perf_counter() - t
        info["train_flops_compiled_loop_body_once"] = xla_flops(train_exec)
        info["train_flops"] = total_flops(train_exec, jax.jit(train_step()), state, batch)
        t = time.perf_counter()
        state, metrics = train_exec(state, batch)
        block((state, metrics))
        info["train_first_step_s"] = time.perf_counter() - t
        info["first_loss"] = float(metrics["loss"])

        def forward():
            return jax.jit(lambda p, x, tt, c: apply_eval(p, x, tt, c))

        t_B = jnp.full((B,), 500, jnp.int32)
        t = time.perf_counter()
        fwd_exec = forward().lower(eval_params, images, t_B, labels).compile()
        info["forward_compile_s"] = time.perf_counter() - t
        info["forward_flops_compiled_loop_body_once"] = xla_flops(fwd_exec)
        # a fresh jit: a cached trace would reuse the chunked attention
        info["forward_flops"] = total_flops(fwd_exec, forward(), eval_params, images, t_B,
                                            labels)
        block(fwd_exec(eval_params, images, t_B, labels))

        samplers = {}
        for name, program in jaxdiff_samplers(apply_eval, schedule, shape, labels,
                                              args.samplers).items():
            t = time.perf_counter()
            samplers[name] = jax.jit(program).lower(eval_params, jax.random.key(3)).compile()
            info[f"{name}_compile_s"] = time.perf_counter() - t
        ctx.update(state=state, batch=batch, train=train_exec, fwd=fwd_exec, images=images,
                   t_B=t_B, labels=labels, samplers=samplers, eval_params=eval_params)
        describe()
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

    def forward_seconds(n):
        """Seconds of ``n`` back-to-back forward calls."""
        t = time.perf_counter()
        for _ in range(n):
            out = ctx["fwd"](ctx["eval_params"], ctx["images"], ctx["t_B"], ctx["labels"])
        block(out)
        return time.perf_counter() - t

    def run_forward(n):
        return {"seconds": forward_seconds(n), "calls": n}

    def run_sample(arg):
        name, seed = arg
        t = time.perf_counter()
        x = block(ctx["samplers"][name](ctx["eval_params"], jax.random.key(100 + seed)))
        seconds = time.perf_counter() - t
        # the same number of forward calls as the sampler, back to back, right after it
        return {"seconds": seconds, "finite": bool(jnp.isfinite(x).all()),
                "forwards_seconds": forward_seconds(SAMPLERS[name][1])}

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

    _serve(conn, {"device": describe, "setup": setup, "train": run_train,
                  "forward": run_forward, "sample": run_sample, "matmul": run_matmul,
                  "memory": memory})


# ---------------------------------------------------------------- diffusers worker

def count_cpu_attention_flops() -> None:
    """Makes ``FlopCounterMode`` count PyTorch's CPU attention kernels
    (``_scaled_dot_product_flash_attention_for_cpu`` and its backward) with the formulas it
    has for the CUDA ones; it registers none for the CPU kernels, so a CPU count left out
    every attention product (a third of a small DiT's FLOPs)."""
    import torch
    from torch.utils import flop_counter

    aten = torch.ops.aten
    for op, formula in ((aten._scaled_dot_product_flash_attention_for_cpu,
                         flop_counter.sdpa_flop),
                        (aten._scaled_dot_product_flash_attention_for_cpu_backward,
                         flop_counter.sdpa_backward_flop)):
        if op not in flop_counter.flop_registry:   # the formulas are already shape-wrapped
            flop_counter.register_flop_formula(op, get_raw=True)(formula)


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
    )
    info = {"import_s": time.perf_counter() - t0, "rss_after_import": _rss_bytes()}
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    if args.device == "cpu":
        torch.set_num_threads(args.torch_threads or _num_cores())
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

    def describe():
        info["device"] = str(device) + (f" ({torch.cuda.get_device_name()})"
                                        if device.type == "cuda" and torch.cuda.is_available()
                                        else "")
        missing = (f"torch {torch.__version__} sees no CUDA device "
                   f"(torch.cuda.is_available() is False; install a CUDA build of torch)"
                   if device.type == "cuda" and not torch.cuda.is_available() else None)
        return {"device": info["device"], "missing_gpu": missing}

    def predict(model, x, t, labels):
        """The network's prediction (a learned-variance half cut off, as in diffusers'
        DiTPipeline): ``model(x, t, class_labels)`` under autocast, the first C channels."""
        with autocast():
            return model(x, t, class_labels=labels).sample[:, :x.shape[1]]

    def setup(network):
        torch.manual_seed(0)
        t = time.perf_counter()
        values = network["diffusers_config"]
        model = getattr(diffusers, values["_class_name"]).from_config(values).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE,
                                      betas=(0.9, 0.999), weight_decay=0.0)
        ema = [p.detach().clone() for p in model.parameters()]
        sync()
        info["init_s"] = time.perf_counter() - t
        info["params"] = sum(p.numel() for p in model.parameters())
        noise_scheduler = DDPMScheduler(num_train_timesteps=T_TRAIN, beta_schedule="linear")
        height, width, channels = network["image_shape"]
        shape = (B, channels, height, width)
        images = torch.rand(*shape, device=device) * 2 - 1
        classes = network["num_classes"]
        labels = None if classes is None else torch.randint(0, classes, (B,), device=device)
        params = list(model.parameters())

        def train_step():
            noise = torch.randn_like(images)
            t_B = torch.randint(0, T_TRAIN, (B,), device=device)
            x_t = noise_scheduler.add_noise(images, noise, t_B)
            loss = F.mse_loss(predict(model, x_t, t_B, labels).float(), noise)
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
        count_cpu_attention_flops()
        with FlopCounterMode(display=False) as counter:
            with torch.no_grad():
                predict(model, images, t_fwd, labels)
        info["torch_counter_forward_flops"] = int(counter.get_total_flops())
        with FlopCounterMode(display=False) as counter:
            predict(model, images, t_fwd, labels).float().square().mean().backward()
        info["torch_counter_train_flops"] = int(counter.get_total_flops())
        optimizer.zero_grad(set_to_none=True)

        schedulers = {
            "ddim": lambda: (DDIMScheduler(num_train_timesteps=T_TRAIN, beta_schedule="linear",
                                           clip_sample=False), DDIM_STEPS),
            "flow_euler": lambda: (FlowMatchEulerDiscreteScheduler(num_train_timesteps=T_TRAIN),
                                   FLOW_STEPS),
            "edm": lambda: (EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5),
                            SAMPLERS["edm"][1])}
        ctx.update(model=model, train_step=train_step, images=images, t_fwd=t_fwd,
                   labels=labels, shape=shape,
                   schedulers={name: schedulers[name]() for name in args.samplers})
        describe()
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
        with torch.inference_mode():
            for _ in range(n):
                predict(model, ctx["images"], ctx["t_fwd"], ctx["labels"])
        sync()
        return {"seconds": time.perf_counter() - t, "calls": n}

    def run_sample(arg):
        """The scheduler's documented loop: scale the input (EDM's c_in; identity or absent
        for the others), call the network (the step's time for each sample, as diffusers'
        DiTPipeline passes it), step."""
        name, seed = arg
        model, (scheduler, steps) = ctx["model"].eval(), ctx["schedulers"][name]
        generator = torch.Generator(device=device).manual_seed(100 + seed)
        sync()
        t = time.perf_counter()
        scheduler.set_timesteps(steps, device=device)
        x = torch.randn(*ctx["shape"], generator=generator, device=device)
        x = x * getattr(scheduler, "init_noise_sigma", 1.0)   # flow matching's is 1
        scale = getattr(scheduler, "scale_model_input", lambda x, step: x)
        with torch.inference_mode():
            for step in scheduler.timesteps:
                out = predict(model, scale(x, step), step.expand(B), ctx["labels"])
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

    _serve(conn, {"device": describe, "setup": setup, "train": run_train,
                  "forward": run_forward, "sample": run_sample, "matmul": run_matmul,
                  "memory": memory})


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


def summarize(raw, flops, peak_gflops, batch, datasheet_gflops=None):
    """Medians over rounds and derived throughput for one peer; ``raw["sample"][name]`` holds
    each sampler's rounds. MFU against the measured matmul peak ``peak_gflops`` and, as
    ``*_mfu_datasheet``, against the chip's ``datasheet_gflops`` (None: not available)."""
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
        "train_mfu_datasheet": mfu_or_none(train_gflops, datasheet_gflops),
        "forward_mfu_datasheet": mfu_or_none(forward_gflops, datasheet_gflops),
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
                    f"{name}_mfu_datasheet": mfu_or_none(gflops, datasheet_gflops),
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
    ("train_mfu", "train MFU (measured matmul peak)", "{:.1%}", "higher"),
    ("forward_mfu", "forward MFU (measured matmul peak)", "{:.1%}", "higher"),
    ("train_mfu_datasheet", "train MFU (datasheet peak)", "{:.1%}", "higher"),
    ("forward_mfu_datasheet", "forward MFU (datasheet peak)", "{:.1%}", "higher"),
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


# rows shown even when neither peer has a value: "n/a" says the run could not give one
NOT_AVAILABLE_ROWS = ("train_mfu_datasheet", "forward_mfu_datasheet")


def _cell(value, fmt: str, key: str) -> str:
    if value is None:
        return "n/a" if key in NOT_AVAILABLE_ROWS else "-"
    return fmt.format(value)


def _datasheet_line(datasheet: dict, dtype: str) -> str:
    if datasheet["tflops"] is None:
        return (f"Datasheet peak: n/a (device kind {datasheet['device_kind']!r} has no entry "
                f"in DATASHEET_TFLOPS for {dtype}; give --peak-tflops).")
    return (f"Datasheet peak: {datasheet['tflops']:.1f} TFLOP/s {dtype} "
            f"({datasheet['source']}; {datasheet['device_kind']}).")


def _fmt_load(load):
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


def markdown(result):
    B = result["config"]["batch"]
    j, d = result["peers"]["jaxdiff"], result["peers"]["diffusers"]
    m, f = result["machine"], result["flops"]
    lines = [
        f"# jaxdiff vs diffusers {MODELS[result['config']['model']].title} "
        f"(`--model {result['config']['model']}{' --tiny' if result['config']['tiny'] else ''}`"
        f"; {result['config']['device']}, {result['config']['dtype']}, batch {B})",
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
        if a is None and b is None and key not in NOT_AVAILABLE_ROWS:
            continue
        ratio = result["ratios"].get(key)
        lines.append("| {} | {} | {} | {} | {} |".format(
            label.format(B=B), _cell(a, fmt, key), _cell(b, fmt, key),
            "-" if ratio is None else f"{ratio:.2f}", better))
    lines += [
        "",
        f"Parameters: jaxdiff {j['params']:,}, diffusers {d['params']:,}. "
        f"FLOPs per call ({f['source']}; used for both peers): "
        f"forward {f['forward'] / 1e9:.2f} GFLOP, train step {f['train'] / 1e9:.2f} GFLOP, "
        + ", ".join(f"{spec['label']} {f[name] / 1e9:.1f} GFLOP ({spec['nfe']} x forward)"
                    for name, spec in result["config"]["samplers"].items())
        + ". XLA's count: forward "
        f"{f['xla_forward'] / 1e9:.2f}, train step {f['xla_train'] / 1e9:.2f} GFLOP; "
        f"PyTorch FlopCounterMode (matmul/conv/attention only): forward "
        f"{f['torch_counter_forward'] / 1e9:.2f}, forward+backward "
        f"{f['torch_counter_train'] / 1e9:.2f} GFLOP.",
        "",
        "Matmul peak ({n}x{n}, {dt}): ".format(n=MATMUL_N[result["config"]["device"]],
                                               dt=result["config"]["dtype"])
        + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in result["matmul"].items() if v)
        + f" GFLOP/s; MFU uses the best, {result['peak_gflops']:.1f} GFLOP/s. "
        + _datasheet_line(result["datasheet_peak"], result["config"]["dtype"]),
        "",
        f"jaxdiff worker XLA_FLAGS: `{j.get('xla_flags') or '(none)'}` "
        f"(`--xla-flags {result['config']['xla_flags']}`).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in {**j["versions"], **d["versions"]}.items()
                                 if v) + ".",
    ]
    return "\n".join(lines) + "\n"


def sampler_names(text: str) -> tuple[str, ...]:
    """``--samplers``: a comma-separated list of :data:`SAMPLERS` keys."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SAMPLERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"samplers must be a comma-separated list of "
                                         f"{list(SAMPLERS)}, got {text!r}")
    return names


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with the defaults that depend on the device and model filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=tuple(MODELS), default="unet_small",
                        help="the network: " + "; ".join(
                            f"{name}: {spec.title}" for name, spec in MODELS.items()))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample-rounds", type=int, default=None,
                        help="rounds that also time the samplers (default: all)")
    parser.add_argument("--samplers", type=sampler_names, default=None,
                        help=f"comma-separated, of {list(SAMPLERS)} (default: the model's: "
                        + "; ".join(f"{name} {','.join(spec.samplers)}"
                                    for name, spec in MODELS.items()) + ")")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--train-steps", type=int, default=None,
                        help="timed train steps per round (default 8 on CPU, 50 on GPU)")
    parser.add_argument("--forward-calls", type=int, default=None,
                        help="timed forward calls per round (default 10 on CPU, 100 on GPU)")
    parser.add_argument("--matmul-reps", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="CPU: torch's intra-op threads (default: every core; on a "
                        "loaded machine 1 avoids OpenMP's spinning barriers)")
    parser.add_argument("--peak-tflops", type=positive_float, default=None,
                        help="the chip's dense peak TFLOP/s in --dtype for the datasheet MFU "
                        "(default: DATASHEET_TFLOPS by jax's device_kind; none on a CPU)")
    parser.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=True,
                        help="after the rounds, time a second jaxdiff setup that loads the "
                        "persistent compilation cache")
    parser.add_argument("--tiny", action="store_true",
                        help="for tests: the model with a few channels and one block "
                        "(BenchModel.tiny); results get a _tiny suffix")
    parser.add_argument("--xla-flags", choices=("recommended", "default"), default="recommended",
                        help="jaxdiff worker: add jaxdiff.perf's recommended XLA_FLAGS (never "
                        "overriding flags already set) or run with XLA's defaults")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    gpu = args.device == "gpu"
    args.train_steps = args.train_steps or (50 if gpu else 8)
    args.forward_calls = args.forward_calls or (100 if gpu else 10)
    args.sample_rounds = min(args.sample_rounds or args.rounds, args.rounds)
    args.samplers = args.samplers or MODELS[args.model].samplers
    return args


def check_devices(peers: dict) -> None:
    """Each worker's device; a ``SystemExit`` naming what is missing when ``--device gpu``
    finds no GPU in jax or torch (before anything compiles)."""
    described = {name: peer.call("device") for name, peer in peers.items()}
    missing = [f"{name}: {d['missing_gpu']}" for name, d in described.items()
               if d["missing_gpu"]]
    if missing:
        raise SystemExit("unet_vs_diffusers: --device gpu, but " + "; ".join(missing))


def run_rounds(args, peers: dict, log) -> dict:
    """The alternating rounds: ``raw[peer]`` with each round's train, forward and sampler
    timings."""
    raw = {name: {"train": [], "forward": [], "sample": {s: [] for s in args.samplers}}
           for name in peers}
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
    return raw


def run_peers(args, machine: dict, log) -> tuple[dict, dict, dict, dict]:
    """Both workers: device check, setup (one at a time: no contention during compile), the
    matmul peaks, the rounds and the memory; ``(setup, matmul, raw, memory)``."""
    peers = {"jaxdiff": Peer("jaxdiff", jaxdiff_worker, args),
             "diffusers": Peer("diffusers", diffusers_worker, args)}
    setup = {}
    try:
        check_devices(peers)
        setup["jaxdiff"] = peers["jaxdiff"].call("setup")
        # the diffusers network is the jaxdiff config's export (diffusers_network)
        setup["diffusers"] = peers["diffusers"].call(
            "setup", {k: setup["jaxdiff"][k]
                      for k in ("diffusers_config", "image_shape", "num_classes")})
        for name, info in setup.items():
            shown = {k: v for k, v in info.items() if k not in ("versions", "diffusers_config")}
            log(f"{name} setup: {json.dumps(shown)}")
        matmul = {"numpy": numpy_matmul(args.matmul_reps, args.dtype, args.device),
                  "jax": peers["jaxdiff"].call("matmul", args.matmul_reps),
                  "torch": peers["diffusers"].call("matmul", args.matmul_reps)}
        log("matmul GFLOP/s: " + ", ".join(f"{k} {v['gflops']:.1f}" for k, v in matmul.items()
                                           if v))
        raw = run_rounds(args, peers, log)
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
    return setup, matmul, raw, memory


def run_warm_start(args, log) -> dict | None:
    """A second jaxdiff setup, alone, loading the compilation cache the first one filled;
    None with ``--no-warm-start``."""
    if not args.warm_start:
        return None
    warm_peer = Peer("jaxdiff-warm", jaxdiff_worker, args)
    try:
        warm = warm_peer.call("setup")
    finally:
        warm_peer.stop()
    log(f"jaxdiff warm start: init {warm['init_s']:.2f}s, train compile "
        f"{warm['train_compile_s']:.2f}s")
    return warm


def jaxdiff_compile_times(args, s: dict, warm: dict | None) -> dict:
    """The jaxdiff peer's compile rows, cold (``s``) and warm (``warm``; None: not run)."""
    compiles = ("train_compile_s", "forward_compile_s",
                *(f"{k}_compile_s" for k in args.samplers))
    out = {k: s[k] for k in compiles}
    out["compile_total_s"] = sum(s[k] for k in compiles)
    out["init_train_compile_s"] = s["init_s"] + s["train_compile_s"]
    out["warm_init_train_compile_s"] = (None if warm is None
                                        else warm["init_s"] + warm["train_compile_s"])
    out["warm_start"] = None if warm is None else {k: warm[k] for k in ("init_s", *compiles)}
    return out


def peer_summary(args, name: str, s: dict, mem: dict, raw: dict, flops: dict, peaks: dict,
                 warm: dict | None) -> dict:
    """One peer's row of the results: :func:`summarize` plus its setup and memory."""
    mib = 2.0 ** 20
    summary = summarize(raw, flops, peaks["measured_gflops"], args.batch,
                        peaks["datasheet_gflops"])
    summary.update(
        params=s["params"], device=s["device"], versions=s["versions"],
        xla_flags=s.get("xla_flags"),
        init_s=s["init_s"], import_s=s["import_s"],
        train_first_step_s=s["train_first_step_s"], first_loss=s["first_loss"],
        peak_rss_mib=mem["peak_rss"] / mib, rss_after_import_mib=mem["rss_after_import"] / mib,
        device_peak_mib=(mem["device_peak_bytes"] / mib
                         if mem.get("device_peak_bytes") else None),
        losses=[t["loss"] for t in raw["train"]],
        samples_finite={k: all(x["finite"] for x in v) for k, v in raw["sample"].items()})
    if name == "jaxdiff":
        summary.update(jaxdiff_compile_times(args, s, warm))
    else:
        summary["torch_threads"] = s["torch_threads"]
    return summary


def write_results(args, result: dict, log) -> str:
    """``result`` as ``<out>/<stem>.json`` and ``.md`` (:func:`result_stem`); the stem."""
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, result_stem(args.model, args.device, args.dtype, args.tiny))
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1, default=str)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))
    log(f"wrote {stem}.json and {stem}.md")
    return stem


def main(argv=None):
    args = parse_args(argv)
    wall0 = time.perf_counter()
    machine = machine_info()

    def log(msg):
        print(f"[{time.perf_counter() - wall0:6.1f}s] {msg}", flush=True)

    args.compilation_cache = tempfile.mkdtemp(prefix="jaxdiff_bench_xla_cache_")
    try:
        setup, matmul, raw, memory = run_peers(args, machine, log)
        warm = run_warm_start(args, log)  # alone: the others have stopped
    finally:
        shutil.rmtree(args.compilation_cache, ignore_errors=True)

    flops = model_flops(args.device, setup["jaxdiff"], setup["diffusers"], args.samplers)
    datasheet = datasheet_peak(args.peak_tflops, setup["jaxdiff"]["device_kind"], args.dtype)
    peaks = {"measured_gflops": max(v["gflops"] for v in matmul.values() if v),
             "datasheet_gflops": None if datasheet["tflops"] is None
             else 1e3 * datasheet["tflops"]}
    results = {name: peer_summary(args, name, setup[name], memory[name], raw[name], flops,
                                  peaks, warm)
               for name in setup}
    ratios = {}
    for key, *_ in ROWS:
        a, b = results["jaxdiff"].get(key), results["diffusers"].get(key)
        if a is not None and b:
            ratios[key] = a / b
    result = {
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": {**vars(args), "diffusers_config": setup["jaxdiff"]["diffusers_config"],
                   "image_shape": setup["jaxdiff"]["image_shape"],
                   "num_classes": setup["jaxdiff"]["num_classes"],
                   "label_dropout": LABEL_DROPOUT if setup["jaxdiff"]["num_classes"] else None,
                   "learning_rate": LEARNING_RATE, "ema_decay": EMA_DECAY,
                   "clip_norm": CLIP_NORM, "train_timesteps": T_TRAIN,
                   "samplers": {k: {"label": SAMPLERS[k][0], "nfe": SAMPLERS[k][1]}
                                for k in args.samplers}},
        "machine": machine, "matmul": matmul, "peak_gflops": peaks["measured_gflops"],
        "datasheet_peak": datasheet, "flops": flops,
        "peers": results, "ratios": ratios, "wall_s": time.perf_counter() - wall0,
    }
    write_results(args, result, log)


if __name__ == "__main__":
    sys.exit(main())
