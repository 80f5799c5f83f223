"""The workflow's approvals collector (.github/scripts/aina-approvals.sh) against a fake `gh`:
what people said on a pull request becomes the JSON `aina gate --approvals` reads."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_aina.gate import approvals

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".github" / "scripts" / "aina-approvals.sh"
D1, D2, D3 = "1" * 16, "2" * 64, "3" * 16

# `gh api [--paginate] PATH [--jq EXPR]`: the canned answer for PATH, through jq as gh applies it
FAKE_GH = f"""#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
assert args[0] == "api", args
args = [a for a in args[1:] if a != "--paginate"]
path, jq = args[0], (args[args.index("--jq") + 1] if "--jq" in args else None)
data = json.load(open(os.environ["FAKE_GH_DATA"]))
if path not in data:
    sys.stderr.write("HTTP 404: " + path + "\\n")
    sys.exit(1)
text = json.dumps(data[path])
if jq is None:
    print(text)
else:
    sys.exit(subprocess.run(["jq", "-r", "-c", jq], input=text, text=True).returncode)
"""


@pytest.mark.skipif(
    shutil.which("jq") is None or shutil.which("bash") is None,
    reason="the script needs bash and jq (both on GitHub's runners)",
)
def test_comments_reviews_and_labels_become_approvals(tmp_path):
    r, pr = "o/r", 7
    data = {
        f"repos/{r}/issues/{pr}/comments": [
            {"user": {"login": "alice"}, "body": f"Looked at it.\n/aina approve {D1}\n"},
            {"user": {"login": "mallory"}, "body": f"/aina approve {D3}"},
            {"user": {"login": "bob"}, "body": "no approval here"},
        ],
        f"repos/{r}/pulls/{pr}/reviews": [
            {"user": {"login": "carol"}, "body": f"/aina approve sha256:{D2}", "state": "APPROVED"},
            {"user": {"login": "bob"}, "body": None, "state": "CHANGES_REQUESTED"},
            {"user": {"login": "bob"}, "body": "", "state": "APPROVED"},
        ],
        f"repos/{r}/pulls/{pr}/comments": [],
        f"repos/{r}/issues/{pr}/labels": [{"name": f"aina-approve:{D3}"}],
        f"repos/{r}/issues/{pr}/events": [
            {"event": "labeled", "actor": {"login": "carol"}, "label": {"name": f"aina-approve:{D3}"}},
            {"event": "labeled", "actor": {"login": "alice"}, "label": {"name": f"aina-approve:{D1}"}},  # removed
            {"event": "labeled", "actor": {"login": "alice"}, "label": {"name": "bug"}},
        ],
        f"repos/{r}/collaborators/alice/permission": {"permission": "write"},
        f"repos/{r}/collaborators/bob/permission": {"permission": "admin"},
        f"repos/{r}/collaborators/carol/permission": {"permission": "maintain"},
        # mallory: 404, so "none"
    }
    bindir = tmp_path / "bin"
    bindir.mkdir()
    gh = bindir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "data.json").write_text(json.dumps(data))
    out = tmp_path / "approvals.json"
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", FAKE_GH_DATA=str(tmp_path / "data.json"))
    done = subprocess.run(
        ["bash", str(SCRIPT), r, str(pr), str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert sorted((a["digest"], a["by"], a["source"], a["permission"]) for a in doc["approvals"]) == [
        (D1, "alice", "comment", "write"),
        (D2, "carol", "review", "maintain"),
        (D3, "carol", "label", "maintain"),
        (D3, "mallory", "comment", "none"),
    ]
    assert sorted((x["by"], x["state"], x["permission"]) for x in doc["reviews"]) == [
        ("bob", "APPROVED", "admin"),
        ("carol", "APPROVED", "maintain"),
    ]
    # and the gate reads it: mallory's approval does not count, the others do
    dec = approvals.load(out)
    assert dec.approval_of(D3 + "0" * 48)[0].by == "carol"
    assert dec.approval_of(D2)[0].by == "carol" and dec.approving_reviewers == ["bob", "carol"]
