"""The benchmark harness's FLOP bookkeeping (pure arithmetic; no timing, no torch)."""

import importlib.util
import pathlib

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
