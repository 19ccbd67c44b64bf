#!/usr/bin/env bash
# Issue 20's GPU benchmarks at the papers' sizes, for one short GPU window (~8 minutes on one
# GPU, compilation and the diffusers peer included): jaxdiff vs diffusers in bf16 mixed
# precision on
#   * ddpm_cifar10 (Ho et al.'s 35.7M CIFAR-10 UNet = UNet2DModel with google/ddpm-cifar10-32's
#     config) at batch 128, 32x32x3;
#   * dit_b2 (DiT-B/2 = DiTTransformer2DModel, class-conditional) at batch 256 on 32x32x4
#     latents;
# train images/s, forward, DDIM-50 and flow Euler-50 sampling, device peak memory, MFU against
# the measured bf16 matmul peak and the chip's datasheet peak. Writes
# benchmarks/results/{ddpm_cifar10,dit_b2}_vs_diffusers_gpu_bfloat16.{json,md}.
#
# Budget: the timed part is seconds (2 rounds x 20 train steps + 20 forward calls per peer, the
# samplers once); most of the time is process start, XLA compilation (cold: the train step,
# the forward and two samplers) and diffusers' setup, so there is no warm-start process.
# Extra options are passed to both runs (e.g. --peak-tflops <dense TFLOP/s> on a chip that
# DATASHEET_TFLOPS does not list, or --rounds 3 with time to spare).
#
# Last, the train step's memory with and without remat (compiled, not run; about a minute):
# benchmarks/results/remat_memory_gpu.{json,md}.
#
# Exits non-zero at once, naming what is missing, if jax or torch sees no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

common=(--device gpu --dtype bfloat16 --rounds 2 --sample-rounds 1 --train-steps 20
        --forward-calls 20 --samplers ddim,flow_euler --no-warm-start)
python benchmarks/unet_vs_diffusers.py --model ddpm_cifar10 --batch 128 "${common[@]}" "$@"
python benchmarks/unet_vs_diffusers.py --model dit_b2 --batch 256 "${common[@]}" "$@"
python benchmarks/remat_memory.py --model ddpm_cifar10 --batch 128
