"""The claims that ``experiments/reproduce.py`` reproduces, one module per claim.

Each module exposes ``NAME`` (the results file's stem and the ``--only`` name), ``CLAIM`` (one
line), ``run(out_dir) -> dict`` (measures, writes figures ``out_dir/<NAME>*.png`` and returns the
JSON-serialisable results) and ``check(results) -> list[str]`` (one message per failure, the
expected values recomputed from closed forms rather than read back from ``results``).
"""
