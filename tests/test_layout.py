"""The package layout's rules, checked on the source text: what differs between processes
lives in ``jaxdiff/tasks/``, ``jaxdiff.metrics`` holds leaf metrics only, and nothing edits
``sys.path``."""

import pathlib
import re

from jaxdiff import tasks

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROCESS_NAMES = "|".join(tasks.TASKS)
# a comparison of a process-like name with a process name, e.g. `process == "masked"`
BRANCH = re.compile(rf"""(process|kind|name)\s*(==|!=|in)\s*[(\[]?["']({PROCESS_NAMES})["']""")


def _sources(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_branch_on_a_process_name_outside_tasks():
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for path in _sources("jaxdiff", "experiments")
            if "jaxdiff/tasks" not in path.as_posix() and "experiments/configs" not in
            path.as_posix()
            for n, line in enumerate(path.read_text().splitlines(), 1) if BRANCH.search(line)]
    assert not hits, "process-name branches outside jaxdiff/tasks/:\n" + "\n".join(hits)


def test_metrics_imports_no_training_task_model_or_evaluation_code():
    pattern = re.compile(r"^\s*(from|import) jaxdiff(\.| import )(train|tasks|models|evaluation)\b"
                         r"|^\s*from jaxdiff import .*\b(train|tasks|models|evaluation)\b")
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in _sources("jaxdiff/metrics")
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_no_file_edits_sys_path():
    hits = [str(path.relative_to(ROOT)) for path in _sources("jaxdiff", "experiments",
                                                               "benchmarks", "tests")
            if path != pathlib.Path(__file__) and "sys.path." in path.read_text()]
    assert not hits, hits
