"""The README's code runs as written: every Python block is executed (in a fresh process, as
a reader would paste it), and every command of a bash block names a program and config that
exist, with flags the program defines."""

import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", re.S | re.M)
BLOCKS = [(lang, textwrap.dedent(body)) for _, lang, body in BLOCK.findall(README)]
PYTHON = [body for lang, body in BLOCKS if lang == "python"]
COMMANDS = [line.split("#")[0].strip() for lang, body in BLOCKS if lang == "bash"
            for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_has_its_blocks():
    assert len(PYTHON) >= 2 and any("experiments/train.py" in c for c in COMMANDS)


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_as_written(index):
    result = subprocess.run([sys.executable, "-c", PYTHON[index]], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"README Python block {index}:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("command", sorted({c for c in COMMANDS if "python" in c}))
def test_bash_commands_name_real_programs_configs_and_flags(command):
    for part in command.split("&&"):
        words = part.split()
        if not words or words[0] not in ("python", "python3") or words[1] == "-m":
            continue
        script = ROOT / words[1]
        assert script.is_file(), f"{words[1]} does not exist"
        for i, word in enumerate(words):
            if word == "--config":
                config = ROOT / words[i + 1].split(":")[0]
                assert config.is_file(), f"{words[i + 1]} does not exist"
        flags = {w.split("=")[0] for w in words[2:] if w.startswith("--")}
        helptext = subprocess.run([sys.executable, str(script), "--helpfull"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=300).stdout
        for flag in flags:
            if flag.startswith("--config."):
                continue          # checked against the schema by train.py itself
            name = re.escape(flag[2:])
            assert re.search(rf"^\s*--(\[no\])?{name}:", helptext, re.M), \
                f"{words[1]} has no {flag}"
