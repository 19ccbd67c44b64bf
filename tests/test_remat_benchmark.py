"""``benchmarks/remat_memory.py``: its report and arguments (the measurement itself is the
residual count of ``tests/models/test_remat.py`` and the committed results)."""

import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "remat_memory.py"
_spec = importlib.util.spec_from_file_location("remat_memory", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_the_report_gives_each_size_in_gib_and_the_ratios():
    off = {"temp_bytes": 2**31, "residual_bytes": 2**32, "argument_bytes": 2**29}
    on = {"temp_bytes": 2**30, "residual_bytes": 2**30, "argument_bytes": 2**29}
    md = bench.report({"model": "unet_tiny", "batch": 2, "device": "cpu (cpu)",
                       "command": "python benchmarks/remat_memory.py", "date": "2026-12-03",
                       "jax": "0.10.2", "xla_flags": bench.CPU_MEMORY_SCHEDULER,
                       "off": off, "on": on})
    assert "| peak temporary memory (GiB) | 2.000 | 1.000 | 0.500 |" in md
    assert "| saved residuals (GiB) | 4.000 | 1.000 | 0.250 |" in md
    assert "| arguments (GiB) | 0.500 | 0.500 | |" in md


def test_a_bad_batch_is_named(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch", "0"])
    assert "--batch must be >= 1, got 0" in capsys.readouterr().err
