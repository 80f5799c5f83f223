"""`aina gate` as a command: its outputs on a cheap change, and configuration errors (exit 3)."""

import json

import pytest
from gate_repos import gate, make_repo


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def test_outputs_markdown_json_and_the_verification_summary(repo, tmp_path):
    repo.branch("docs")
    repo.commit("docs", {"docs/guide.md": "# Guide\n\nBetter.\n"})
    summary, vsa = tmp_path / "summary.md", tmp_path / "vsa.json"
    summary.write_text("earlier step\n")
    done, verdict = gate(repo, "--summary", str(summary), "--vsa", str(vsa), head="docs")
    assert done.returncode == 0, done.stderr
    md = summary.read_text()
    assert md.startswith("earlier step\n## ✅ aina / gate: pass\n")  # appended, verdict first
    assert "| scope | ✅ pass | docs only" in md
    statement = json.loads(vsa.read_text())
    assert statement == verdict["statement"]
    assert statement["subject"][0]["digest"]["gitCommit"] == verdict["head"] == repo.git("rev-parse", "docs")
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["predicate"]["policy"]["uri"].startswith(".github/aina.yml@")
    assert verdict["base"] == repo.git("rev-parse", "main") and verdict["exit_code"] == 0
    assert "aina gate: pass" in done.stdout


@pytest.mark.parametrize(
    "head, policy, approvals, message",
    [
        ("no-such-branch", None, None, "'no-such-branch' is not a commit"),
        ("docs", "gate:\n  noize: 0.1\n", None, r"unknown key(s) ['gate.noize']"),
        ("docs", "gate:\n  coverage: 101\n", None, "gate.coverage must be a percentage"),
        ("docs", None, {"approvals": [{"digest": "xyz", "by": "a", "permission": "write"}]}, "16 to 64 hex digits"),
    ],
)
def test_configuration_errors_exit_3_with_the_reason(repo, head, policy, approvals, message):
    if policy is not None:  # the policy is read at the base: a bad one there is the repository's error
        repo.commit("policy", {".github/aina.yml": policy})
    repo.branch("docs")
    repo.commit("docs", {"docs/guide.md": "# Guide\n\nBetter.\n"})
    done, verdict = gate(repo, head=head, approvals=approvals)
    assert done.returncode == 3, done.stdout + done.stderr
    assert message in done.stderr and verdict == {}


def test_a_policy_edited_by_the_change_itself_is_not_the_one_applied(repo):
    repo.branch("lax")
    repo.commit("relax the gate", {".github/aina.yml": "gate:\n  coverage: 0\n  bogus: 1\n"})
    done, verdict = gate(repo, head="lax")
    assert done.returncode == 0, done.stderr  # the base's policy is valid and applies
    assert verdict["policy"]["source"] == ".github/aina.yml@" + repo.git("rev-parse", "main")[:12]


def test_the_command_is_registered():
    from pytest_aina.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "gate" in sub.choices
