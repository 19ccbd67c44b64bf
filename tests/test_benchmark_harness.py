"""The benchmark harness: its FLOP and MFU bookkeeping (pure arithmetic), and the
``--model ddpm_cifar10`` / ``dit_b2`` paths run end to end at a tiny size on the CPU (both
peers, torch and diffusers included)."""

import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "unet_vs_diffusers.py"
_spec = importlib.util.spec_from_file_location("unet_vs_diffusers", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_matmul_flops_is_two_n_cubed():
    assert bench.matmul_flops(2048) == 2 * 2048**3
    assert bench.matmul_flops(1) == 2


def test_throughput_and_mfu():
    # 17.18 GFLOP in 0.1 s is 171.8 GFLOP/s; half the peak is MFU 0.5
    assert bench.gflops_per_s(bench.matmul_flops(2048), 0.1) == pytest.approx(171.798691840)
    assert bench.mfu(50.0, 200.0) == pytest.approx(0.25)
    assert bench.images_per_s(16, 3, 2.0) == pytest.approx(24.0)


def test_xla_flops_reads_dict_or_list():
    class Compiled:
        def __init__(self, cost):
            self.cost = cost

        def cost_analysis(self):
            return self.cost

    assert bench.xla_flops(Compiled({"flops": 12.0})) == 12.0
    assert bench.xla_flops(Compiled([{"flops": 7.0}])) == 7.0


def test_configs_describe_the_same_network():
    from jaxdiff.models.functional import abstract_init, count_params

    config = bench.jaxdiff_unet()
    # diffusers' UNet2DModel with DIFFUSERS_UNET has 6,472,195 parameters (diffusers 0.42.1)
    assert count_params(abstract_init(config)[1]) == 6_472_195
    assert tuple(config.base_channels * m for m in config.channel_mults) == \
        bench.DIFFUSERS_UNET["block_out_channels"]


def test_summary_reports_each_sampler_over_as_many_forward_calls():
    raw = {"train": [{"seconds": 3.0, "steps": 3}], "forward": [{"seconds": 2.5, "calls": 5}],
           "sample": {"ddim": [{"seconds": 26.0, "forwards_seconds": 25.0},
                               {"seconds": 24.0, "forwards_seconds": 25.0}],
                      "edm": [{"seconds": 21.0, "forwards_seconds": 17.5}]}}
    flops = {"train": 1e9, "forward": 1e9, "ddim": 50e9, "edm": 35e9}
    summary = bench.summarize(raw, flops, 100.0, 16)
    assert summary["ddim_over_forwards"] == pytest.approx((26 / 25 + 24 / 25) / 2)
    assert summary["edm_over_forwards"] == pytest.approx(1.2)
    assert summary["ddim_s"] == pytest.approx(25.0)
    assert summary["edm_gflops_per_s"] == pytest.approx(35 / 21)
    assert summary["forward_ms"] == pytest.approx(500.0)
    assert summary["train_images_per_s"] == pytest.approx(16.0)
    # the torch peer records no back-to-back forward calls: no ratio
    raw["sample"] = {"ddim": [{"seconds": 20.0}]}
    assert bench.summarize(raw, flops, 100.0, 16)["ddim_over_forwards"] is None


def test_every_sampler_has_a_row_and_its_network_calls():
    keys = [row[0] for row in bench.ROWS]
    for name, (_, nfe) in bench.SAMPLERS.items():
        assert {f"{name}_s", f"{name}_over_forwards"} <= set(keys) and nfe > 0
    # EDM's Heun: 18 steps are 35 calls, the diffusers peer's Euler steps
    assert bench.SAMPLERS["edm"][1] == 2 * bench.EDM_HEUN_STEPS - 1 == 35


def test_model_flops_counts_xla_on_cpu_and_torch_on_gpu():
    jaxdiff_setup = {"forward_flops": 48.5e9, "train_flops": 146.5e9}
    diffusers_setup = {"torch_counter_forward_flops": 48.1e9,
                       "torch_counter_train_flops": 144.2e9}
    cpu = bench.model_flops("cpu", jaxdiff_setup, diffusers_setup)
    assert (cpu["forward"], cpu["train"], cpu["ddim"]) == (48.5e9, 146.5e9, 50 * 48.5e9)
    assert cpu["edm"] == 35 * 48.5e9 and cpu["flow_euler"] == 50 * 48.5e9
    # XLA:GPU does not count cuDNN convolutions: the GPU rows use PyTorch's count
    gpu = bench.model_flops("gpu", {"forward_flops": 6.5e9, "train_flops": 20.7e9},
                            diffusers_setup)
    assert (gpu["forward"], gpu["train"], gpu["ddim"]) == (48.1e9, 144.2e9, 50 * 48.1e9)
    assert (gpu["xla_forward"], gpu["xla_train"]) == (6.5e9, 20.7e9)


def test_datasheet_peaks_by_device_kind():
    # jax's device_kind strings; NVIDIA datasheets' dense (non-sparse) peaks
    assert bench.datasheet_tflops("NVIDIA H200", "bfloat16") == 989.4
    assert bench.datasheet_tflops("NVIDIA H100 80GB HBM3", "float32") == 494.7
    assert bench.datasheet_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.5
    assert bench.datasheet_tflops("NVIDIA A100-SXM4-80GB", "bfloat16") == 312.0
    for unknown in ("NVIDIA H200 NVL", "cpu", "NVIDIA L4"):   # never a made-up number
        assert bench.datasheet_tflops(unknown, "bfloat16") is None
    assert bench.datasheet_peak(None, "cpu", "float32")["tflops"] is None
    assert bench.datasheet_peak(2.5, "cpu", "float32") == {
        "tflops": 2.5, "source": "--peak-tflops", "device_kind": "cpu"}
    raw = {"train": [{"seconds": 1.0, "steps": 1}], "forward": [{"seconds": 1.0, "calls": 1}],
           "sample": {}}
    flops = {"train": 300e9, "forward": 100e9}
    summary = bench.summarize(raw, flops, 1000.0, 16, datasheet_gflops=1200.0)
    assert summary["train_mfu_datasheet"] == pytest.approx(0.25)
    assert summary["train_mfu"] == pytest.approx(0.3)
    assert bench.summarize(raw, flops, 1000.0, 16)["forward_mfu_datasheet"] is None


def test_result_names_keep_the_unet_small_name_and_name_the_model():
    assert bench.result_stem("unet_small", "gpu", "bfloat16") == "unet_vs_diffusers_gpu_bfloat16"
    assert bench.result_stem("ddpm_cifar10", "gpu", "bfloat16") == \
        "ddpm_cifar10_vs_diffusers_gpu_bfloat16"
    assert bench.result_stem("dit_b2", "cpu", "float32", tiny=True) == \
        "dit_b2_vs_diffusers_cpu_tiny"


def test_a_model_typo_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--model", "dit_b3"])
    assert "invalid choice: 'dit_b3'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--samplers", "ddim,heun"])
    assert "samplers must be a comma-separated list" in capsys.readouterr().err
    args = bench.parse_args(["--model", "dit_b2"])
    assert args.samplers == ("ddim", "flow_euler") and args.model == "dit_b2"


def test_the_ddpm_cifar10_network_is_google_ddpm_cifar10_32s_unet():
    network = bench.diffusers_network(bench.jaxdiff_network("ddpm_cifar10"))
    values = network["diffusers_config"]
    assert values["_class_name"] == "UNet2DModel"
    assert values["block_out_channels"] == [128, 256, 256, 256]
    assert values["down_block_types"] == ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D",
                                          "DownBlock2D"]
    assert (values["freq_shift"], values["flip_sin_to_cos"], values["norm_eps"]) == \
        (1.0, False, 1e-6)
    assert network["image_shape"] == (32, 32, 3) and network["num_classes"] is None
    dit = bench.diffusers_network(bench.jaxdiff_network("dit_b2"))
    assert dit["diffusers_config"]["_class_name"] == "DiTTransformer2DModel"
    assert (dit["diffusers_config"]["num_layers"], dit["diffusers_config"]["out_channels"]) == \
        (12, 8)
    assert dit["image_shape"] == (32, 32, 4) and dit["num_classes"] == 1000


# ---------------------------------------------------------------- tiny runs, both peers

# model -> (samplers, extra options): one sampler each keeps the compiles short
TINY_RUNS = {"dit_b2": ("flow_euler", ["--peak-tflops", "1.5"]),
             "ddpm_cifar10": ("ddim", [])}


def _run(*options, out):
    """The benchmark's command line in a fresh process (its workers are spawned), as a shell
    runs it: without conftest's XLA_FLAGS (8 simulated devices) and JAX_PLATFORMS (the
    harness sets the platform itself)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    return subprocess.run([sys.executable, str(_PATH), "--tiny", "--batch", "2", "--rounds",
                           "1", "--train-steps", "1", "--forward-calls", "1",
                           "--matmul-reps", "1", "--torch-threads", "1", "--no-warm-start",
                           "--out", str(out), *options],
                          capture_output=True, text=True, timeout=600, check=False, env=env)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """``model -> (result JSON, markdown)`` of a tiny CPU run of each of :data:`TINY_RUNS`
    (65-80 s for both on 2 cores, mostly XLA compiles: the tests using it are slow)."""
    out = tmp_path_factory.mktemp("bench")
    results = {}
    for model, (samplers, extra) in TINY_RUNS.items():
        done = _run("--model", model, "--samplers", samplers, *extra, out=out)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        stem = out / bench.result_stem(model, "cpu", "float32", tiny=True)
        results[model] = (json.loads(stem.with_suffix(".json").read_text()),
                          stem.with_suffix(".md").read_text())
    return results


@pytest.mark.slow
@pytest.mark.parametrize("model", list(TINY_RUNS))
def test_a_tiny_run_times_both_peers_on_the_same_network(tiny_results, model):
    result, _ = tiny_results[model]
    sampler = TINY_RUNS[model][0]
    jaxdiff, diffusers = result["peers"]["jaxdiff"], result["peers"]["diffusers"]
    for peer in (jaxdiff, diffusers):
        assert peer["train_images_per_s"] > 0 and peer["forward_ms"] > 0
        assert peer[f"{sampler}_s"] > 0 and peer["samples_finite"] == {sampler: True}
    assert jaxdiff["params"] == diffusers["params"] > 0   # depth 1: one embedder, no copies
    conditional = model == "dit_b2"
    assert result["config"]["num_classes"] == (1000 if conditional else None)
    assert result["config"]["image_shape"] == ([32, 32, 4] if conditional else [32, 32, 3])


@pytest.mark.slow
@pytest.mark.parametrize("model", list(TINY_RUNS))
def test_a_tiny_run_counts_flops_as_pytorch_does(tiny_results, model):
    flops = tiny_results[model][0]["flops"]
    assert flops["xla_train"] > flops["xla_forward"] > 0
    # XLA also counts element-wise ops and leaves out the padded taps of a convolution;
    # PyTorch counts matmuls, convolutions and attention: within 10% (measured 2-5%)
    assert flops["xla_train"] / flops["torch_counter_train"] == pytest.approx(1.0, abs=0.1)
    assert flops["xla_forward"] / flops["torch_counter_forward"] == pytest.approx(1.0, abs=0.1)
    assert flops["train"] == flops["xla_train"]   # on CPU the XLA count is the one used


@pytest.mark.slow
def test_a_tiny_run_reports_mfu_against_the_datasheet_only_with_a_peak(tiny_results):
    given, given_md = tiny_results["dit_b2"]           # --peak-tflops 1.5
    assert given["datasheet_peak"]["tflops"] == 1.5
    for peer in given["peers"].values():
        assert peer["train_mfu_datasheet"] == pytest.approx(peer["train_gflops_per_s"] / 1500)
        assert peer["train_mfu"] > 0
    assert "1.5 TFLOP/s float32 (--peak-tflops" in given_md
    unknown, unknown_md = tiny_results["ddpm_cifar10"]  # a CPU, no --peak-tflops
    assert unknown["datasheet_peak"]["tflops"] is None
    for peer in unknown["peers"].values():
        assert peer["train_mfu_datasheet"] is None and peer["forward_mfu_datasheet"] is None
        assert peer["train_mfu"] > 0
    assert "| train MFU (datasheet peak) | n/a | n/a |" in unknown_md


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU may be visible here")
def test_asking_for_a_gpu_where_none_is_visible_fails_loudly(tmp_path):
    done = _run("--model", "dit_b2", "--device", "gpu", out=tmp_path)
    assert done.returncode != 0
    assert "--device gpu, but" in done.stderr and "sees no GPU" in done.stderr
    assert not list(tmp_path.iterdir())   # no result files


def test_text_generation_speedup():
    path = _PATH.parent / "text_generation.py"
    spec = importlib.util.spec_from_file_location("text_generation", path)
    text = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(text)
    assert text.speedup(0.357, 0.0785) == pytest.approx(4.547770700636943)
    assert text.PAPER_REFERENCE["speedup"] == pytest.approx(0.357 / 0.0785)
    assert text.SAMPLERS == ("d3pm_absorbing_20", "masked_20", "masked_20_cached",
                             "block_16_kv_cache", "block_16_no_cache", "ar_kv_cache",
                             "ar_no_cache")
