"""The local forge: one branch per hypothesis, one commit on top of HEAD, the user's
working tree, index and current branch untouched."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from change_records import git, make_config_record, repo  # noqa: F401  (fixtures, from beside this module)

from pytest_aina.changer.change import write_change
from pytest_aina.changer.forge import ForgeError, open_pr, publish, scratch_checkout


def _change(record, repo, now="2025-01-07T10:05:00Z"):
    return write_change(record, repo, spec_path="specs/softmax.yaml", now=now)


def _state(repo, git):
    """What a user would notice changing: HEAD, the current branch, the index, the files."""
    files = {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.parts and ".aina" not in p.parts
    }
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        git(repo, "status", "--porcelain"),
        git(repo, "ls-files", "--stage"),
        files,
    )


def test_branch_has_one_commit_with_exactly_the_change(repo, git, make_config_record):
    (repo / "scratch.txt").write_text("work in progress, not committed\n")  # a dirty tree stays dirty
    change = _change(make_config_record(), repo)
    before = _state(repo, git)
    result = publish(change, repo)
    assert _state(repo, git) == before

    head = before[0]
    assert result.branch == "aina/softmax-hyp-7f3a9c21d4e5b6a7" and result.base == head and not result.updated
    assert git(repo, "rev-list", f"{head}..{result.branch}").split() == [result.commit]
    assert git(repo, "rev-parse", f"{result.commit}^@") == head
    assert (
        git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", result.branch)
        == "pytest-aina <aina@localhost>|pytest-aina <aina@localhost>"
    )
    changed = git(repo, "diff", "--name-only", head, result.branch).split()
    assert sorted(changed) == sorted(change.files)
    for path, text in change.files.items():
        assert git(repo, "show", f"{result.branch}:{path}") == text.rstrip("\n")
    message = git(repo, "log", "-1", "--format=%B", result.branch)
    assert message.startswith(change.title) and "Aina-Hypothesis: hyp-7f3a9c21d4e5b6a7" in message
    assert "not GPU evidence" in message

    # the PR body and the change, beside the branch
    assert result.body_path == repo / ".aina/forge/aina-softmax-hyp-7f3a9c21d4e5b6a7.md"
    assert result.body_path.read_text() == change.body and change.body.startswith(f"## {change.title}\n")
    saved = json.loads(result.json_path.read_text())
    assert saved["forge"] == {"branch": result.branch, "commit": result.commit, "base": head}
    assert {k: v for k, v in saved.items() if k != "forge"} == change.to_json()
    text = result.message()
    assert result.branch in text and str(result.body_path) in text and "new" in text


def test_publishing_again_replaces_the_commit_on_the_same_branch(repo, git, make_config_record):
    first = publish(_change(make_config_record(), repo), repo)
    # the same change again: nothing to replace
    same = publish(_change(make_config_record(), repo), repo)
    assert same.commit == first.commit and same.previous == first.commit and "unchanged" in same.message()

    # main moves on, and the search is re-run later: still one branch, one commit, on the new HEAD
    (repo / "README.md").write_text("notes\n")
    git(repo, "add", "README.md")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "more")
    head = git(repo, "rev-parse", "HEAD")
    later = _change(make_config_record(), repo, now="2025-01-08T09:00:00Z")
    again = open_pr(repo, later)  # what aina evolve calls: publish, as data
    assert again["branch"] == first.branch and again["previous"] == first.commit and again["commit"] != first.commit
    assert "updated in place" in again["message"]
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/aina/").split() == [
        f"refs/heads/{first.branch}"
    ]
    assert git(repo, "rev-list", f"{head}..{first.branch}").split() == [again["commit"]]
    assert git(repo, "rev-parse", f"{again['commit']}^@") == head
    assert '"created": "2025-01-08T09:00:00Z"' in git(repo, "show", f"{first.branch}:{later.attestation}")
    assert json.loads(Path(again["json_path"]).read_text())["forge"]["commit"] == again["commit"]


def test_the_forge_does_not_overwrite_a_branch_it_did_not_make(repo, git, make_config_record):
    change = _change(make_config_record(), repo)
    git(repo, "branch", change.branch)  # someone's own branch with that name
    with pytest.raises(ForgeError, match="not by pytest-aina"):
        publish(change, repo)


def test_the_forge_refuses_to_rewrite_the_checked_out_branch(repo, git, make_config_record):
    change = _change(make_config_record(), repo)
    publish(change, repo)
    git(repo, "checkout", "-q", change.branch)
    with pytest.raises(ForgeError, match="is checked out here"):
        publish(replace(change, title="again"), repo)


def test_the_forge_needs_a_repository_with_a_commit(tmp_path, repo, make_config_record):
    change = _change(make_config_record(), repo)
    with pytest.raises(ForgeError, match="not inside a git repository"):
        publish(change, tmp_path / "nowhere")


def test_scratch_checkout_is_head_plus_the_change_and_goes_away(repo, git, make_config_record):
    change = _change(make_config_record(), repo)
    (repo / "uncommitted.txt").write_text("x")
    with scratch_checkout(repo, change) as checkout:
        assert (checkout / "kernels/softmax.py").read_text() == (repo / "kernels/softmax.py").read_text()
        assert not (checkout / "uncommitted.txt").exists()  # HEAD's tree, not the working tree
        for path, text in change.files.items():
            assert (checkout / path).read_text() == text
    assert not checkout.exists()
    assert git(repo, "status", "--porcelain") == "?? uncommitted.txt"


def test_a_change_reads_back_from_its_branch(repo, git, make_config_record):
    """What the merge gate does with a PR's head: the files the branch changes on its base,
    the change they make, and the one provenance check against that base."""
    from pytest_aina.changer.change import verify
    from pytest_aina.changer.forge import read_change

    change = _change(make_config_record(), repo)
    result = publish(change, repo)
    assert read_change(repo, result.branch) == change
    head = git(repo, "rev-parse", "HEAD")
    assert read_change(repo, result.branch, base=head).files == change.files
    # the record says it was made on commit 000...: not this repository's HEAD, and that is what the check says
    assert verify(change.files, attestation=change.attestation, base=head)[-1].startswith(
        f"the change was made on {'0' * 12} but sits on {head[:12]}"
    )
