"""From a Change to a PR on the fake: one commit, labels, body; updated in place; closed when
superseded; policy; outcomes; commands; the provenance check."""

from __future__ import annotations

import hashlib
import json

from app_helpers import drain, make_change, publish

from github_app.store import JobSpec

REPO = "octo-org/kernels"


def bot_pulls(repo, state: str | None = None):
    return [p for p in repo.pulls() if state is None or p.state == state]


def files_at(repo, sha: str) -> dict[str, str]:
    git = repo.git
    return {path: git.objects[blob][1].decode() for path, (_, blob) in git.flatten(git.commits[sha].tree).items()}


def test_a_change_becomes_one_commit_on_the_base_and_a_labelled_pr(fake, app, onboarded):
    repo, inst = onboarded
    base = repo.refs["refs/heads/main"]
    change = make_change("hyp-1", base=base)
    publish(app, inst, change)

    [pr] = bot_pulls(repo)
    assert pr.title == change["title"] and pr.user == fake.bot_login
    assert pr.head_ref == "aina/softmax/hyp-1" and pr.base_ref == "main"
    assert "| 4096x50304 | 1.00 ms | 0.80 ms |" in pr.body
    assert "<!-- aina:hypothesis=hyp-1 -->" in pr.body and "/aina rebase" in pr.body
    assert pr.labels == ["aina", "kernel:softmax", "risk:low"]
    head = repo.git.commits[pr.head_sha]
    assert head.parents == (base,)
    files = files_at(repo, pr.head_sha)
    for path, content in change["files"].items():
        assert files[path] == content
    assert files["README.md"] == "# kernels\n"  # the base's files are kept
    [check] = repo.check_runs
    assert (check.head_sha, check.conclusion) == (pr.head_sha, "success")
    link = app.services.store.open_pull(REPO, "hyp-1")
    assert (link["number"], link["head_sha"]) == (pr.number, pr.head_sha)


def test_the_same_hypothesis_again_updates_the_same_pr(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    first_head = pr.head_sha
    better = make_change(
        "hyp-1",
        content="def softmax_v2(x):\n    return x  # better\n",
        title="softmax: even faster",
        branch="aina/softmax/hyp-1-take-2",
    )
    publish(app, inst, better)
    assert len(bot_pulls(repo)) == 1, "a second PR was opened for the same hypothesis"
    assert pr.title == "softmax: even faster" and pr.state == "open"
    assert pr.head_ref == "aina/softmax/hyp-1"  # the PR's branch is kept
    assert pr.head_sha != first_head
    assert files_at(repo, pr.head_sha)["kernels/softmax_v2.py"].endswith("# better\n")
    assert repo.git.commits[pr.head_sha].parents == (repo.refs["refs/heads/main"],)
    # Publishing the very same change once more changes nothing on GitHub.
    commits_before = fake.count("POST", "git/create-commit")
    publish(app, inst, better)
    assert fake.count("POST", "git/create-commit") == commits_before
    assert fake.count("POST", "pulls/create") == 1


def test_a_superseding_change_closes_the_old_pr(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-old"))
    publish(app, inst, make_change("hyp-new", supersedes=["hyp-old"]))
    old, new = sorted(bot_pulls(repo), key=lambda p: p.number)
    assert old.state == "closed" and new.state == "open"
    assert [repo.comments[c].body for c in old.comments] == [f"Superseded by #{new.number}."]
    assert "refs/heads/aina/softmax/hyp-old" not in repo.refs
    assert app.services.store.pull(REPO, old.number)["outcome"] == "superseded"


def test_policy_limits_paths_kernels_and_open_prs(fake, app, onboarded):
    repo, inst = onboarded
    fake.push(
        repo,
        {".github/aina.yml": "max_open_prs: 1\nkernels: [softmax]\npaths: ['kernels/**', '.aina/**']\n"},
        "policy",
        deliver=False,
    )
    publish(app, inst, make_change("outside", files={"setup.py": "evil\n"}))
    publish(app, inst, make_change("other-kernel", kernel="rms_norm"))
    failed = {
        j.payload["change"]["hypothesis_id"]: j.last_error
        for j in app.services.store.jobs(kind="publish", state="failed")
    }
    assert "setup.py" in failed["outside"]
    assert "rms_norm" in failed["other-kernel"]
    assert bot_pulls(repo) == []

    publish(app, inst, make_change("first"))
    publish(app, inst, make_change("second"))
    assert [p.head_ref for p in bot_pulls(repo)] == ["aina/softmax/first"]
    [waiting] = app.services.store.jobs(kind="publish", state="deferred")
    assert "policy allows 1" in waiting.last_error

    # A maintainer closes the first PR: the slot frees, the waiting change goes out.
    fake.close_pull_as(repo, bot_pulls(repo)[0].number, "maintainer")
    drain(app.services)
    assert [p.head_ref for p in bot_pulls(repo, "open")] == ["aina/softmax/second"]
    assert app.services.store.pull(REPO, bot_pulls(repo)[0].number)["outcome"] == "closed"


def test_a_bad_policy_file_is_reported_on_the_dashboard(fake, app, onboarded):
    repo, inst = onboarded
    fake.push(repo, {".github/aina.yml": "max_open_prs: lots\n"}, "policy", deliver=False)
    publish(app, inst, make_change("hyp-1"))
    assert bot_pulls(repo) == []
    dashboard = repo.issues[app.services.store.repository(REPO)["dashboard_issue"]]
    assert "The policy file is wrong" in dashboard.body and "max_open_prs" in dashboard.body


def test_a_merged_pr_is_recorded_and_the_push_is_the_new_baseline(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    merge_sha = fake.merge_pull(repo, pr.number, "maintainer")
    drain(app.services)
    link = app.services.store.pull(REPO, pr.number)
    assert (link["state"], link["outcome"], link["closed_by"]) == ("closed", "merged", "maintainer")
    assert app.services.store.repository(REPO)["baseline_sha"] == merge_sha
    dashboard = repo.issues[app.services.store.repository(REPO)["dashboard_issue"]]
    assert f"| #{pr.number} | `hyp-1` | merged | maintainer |" in dashboard.body
    assert merge_sha[:12] in dashboard.body


def test_commands_in_comments_need_write_access(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    fake.comment_as(repo, pr.number, "drive-by", "/aina close")
    drain(app.services)
    assert pr.state == "open"
    replies = [repo.comments[c].body for c in pr.comments if repo.comments[c].user == fake.bot_login]
    assert len(replies) == 1 and "refused" in replies[0] and "@drive-by" in replies[0]

    fake.comment_as(repo, pr.number, "maintainer", "Thanks!\n/aina close\n")
    drain(app.services)
    assert pr.state == "closed"
    link = app.services.store.pull(REPO, pr.number)
    assert (link["outcome"], link["closed_by"]) == ("closed-by-command", "maintainer")


def test_rebase_rebuilds_the_change_on_the_new_base(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    new_base = fake.push(repo, {"README.md": "# kernels, now with docs\n"}, "docs")
    fake.comment_as(repo, pr.number, "maintainer", "/aina rebase")
    drain(app.services)
    head = repo.git.commits[pr.head_sha]
    assert head.parents == (new_base,)
    files = files_at(repo, pr.head_sha)
    assert files["README.md"] == "# kernels, now with docs\n"
    assert "kernels/softmax_v2.py" in files
    assert any("rebased" in repo.comments[c].body for c in pr.comments)
    assert len(bot_pulls(repo)) == 1
    # The provenance check ran on the new head too.
    assert {c.head_sha for c in repo.check_runs} >= {pr.head_sha}


def test_retry_and_dashboard_ticks_queue_an_evolution_run(fake, app, onboarded):
    repo, inst = onboarded
    store = app.services.store
    hypothesis = {
        "id": "hyp-1",
        "kind": "hot_unspecialised",
        "kernel": "softmax",
        "variant": None,
        "domain": {"dims": {"M": [4096, 8191], "N": [32768, 65535]}, "dtype": "float16", "arch": "sm_90"},
        "title": "softmax at 4096x50304 float16 has no specialised variant",
        "expected_gain": 5400.0,
        "expected_gain_unit": "gpu_s_per_day",
        "gain_basis": "prior",
        "evidence": {"windows": 12},
    }
    store.replace_hypotheses(REPO, [hypothesis])
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    fake.comment_as(repo, pr.number, "maintainer", "/aina retry")
    drain(app.services, queues=("default",))
    [evolve] = store.jobs(kind="evolve")
    assert evolve.payload["hypothesis"] == hypothesis
    assert evolve.payload["requested_by"] == "maintainer"

    # The dashboard lists the hypothesis with a box; a maintainer ticks another one.
    store.replace_hypotheses(REPO, [hypothesis, {**hypothesis, "id": "hyp-2", "expected_gain": 60.0}])
    store.enqueue([JobSpec("dashboard", {"repository": REPO, "installation_id": inst.id}, key="d", repository=REPO)])
    drain(app.services, queues=("default",))
    number = store.repository(REPO)["dashboard_issue"]
    body = repo.issues[number].body
    assert "1.5 GPU-h/day" in body and "1.0 GPU-min/day" in body
    assert "- [ ] <!-- aina-run:hyp-2 -->" in body
    fake.edit_issue_as(
        repo, number, "maintainer", body.replace("- [ ] <!-- aina-run:hyp-2 -->", "- [x] <!-- aina-run:hyp-2 -->")
    )
    drain(app.services, queues=("default",))
    queued = {j.payload["hypothesis"]["id"] for j in store.jobs(kind="evolve")}
    assert queued == {"hyp-1", "hyp-2"}
    redrawn = repo.issues[number].body
    assert "[x]" not in redrawn and "hyp-2" in redrawn and "run queued" in redrawn


def test_a_tick_from_someone_without_write_access_is_refused(fake, app, onboarded):
    repo, inst = onboarded
    store = app.services.store
    store.replace_hypotheses(
        REPO, [{"id": "hyp-9", "kind": "hot_shape", "kernel": "softmax", "evidence": {}, "expected_gain": 10.0}]
    )
    store.enqueue([JobSpec("dashboard", {"repository": REPO, "installation_id": inst.id}, key="d", repository=REPO)])
    drain(app.services)
    number = store.repository(REPO)["dashboard_issue"]
    body = repo.issues[number].body
    fake.edit_issue_as(repo, number, "drive-by", body.replace("- [ ]", "- [x]"))
    drain(app.services)
    assert store.jobs(kind="evolve") == []
    assert "[x]" not in repo.issues[number].body
    assert any("@drive-by" in repo.comments[c].body for c in repo.issues[number].comments)


def test_a_rerequested_check_suite_runs_the_provenance_check_again(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    # Someone pushes to the bot branch a file that does not match its attestation.
    tampered = fake.push(
        repo, {"kernels/softmax_v2.py": "import os\n"}, "tamper", branch="aina/softmax/hyp-1", deliver=False
    )
    pr.head_sha = tampered
    app.services.store.save_pull(
        REPO,
        "hyp-1",
        pr.number,
        pr.head_ref,
        head_sha=tampered,
        title=pr.title,
        kernel="softmax",
        change=app.services.store.pull(REPO, pr.number)["change"],
    )
    fake.rerequest_check_suite(repo, tampered, "maintainer")
    drain(app.services)
    latest = repo.check_runs[-1]
    assert (latest.head_sha, latest.conclusion) == (tampered, "failure")
    assert "MISMATCH" in latest.output["summary"]


def test_a_file_the_attestation_does_not_declare_fails_the_check(fake, app, onboarded):
    repo, inst = onboarded
    publish(app, inst, make_change("hyp-1"))
    [pr] = bot_pulls(repo)
    [first] = repo.check_runs
    assert first.conclusion == "success"
    # The same files, remade as one commit on the base, with one file more: nothing on top to blame.
    base = repo.git.commits[pr.head_sha].parents[0]
    files = dict(files_at(repo, pr.head_sha), **{"kernels/undeclared.py": "x = 1\n"})
    sneaky = repo.git.commit(
        repo.git.build({p: ("100644", repo.git.blob(c.encode())) for p, c in files.items()}),
        [base],
        "sneaky",
        repo.git.commits[pr.head_sha].author,
        repo.git.commits[pr.head_sha].committer,
    )
    repo.refs["refs/heads/aina/softmax/hyp-1"] = pr.head_sha = sneaky
    app.services.store.save_pull(
        REPO,
        "hyp-1",
        pr.number,
        pr.head_ref,
        head_sha=sneaky,
        title=pr.title,
        kernel="softmax",
        change=app.services.store.pull(REPO, pr.number)["change"],
    )
    fake.rerequest_check_suite(repo, sneaky, "maintainer")
    drain(app.services)
    latest = repo.check_runs[-1]
    assert (latest.head_sha, latest.conclusion) == (sneaky, "failure")
    assert latest.output["title"] == "1 problem(s) with the provenance"
    assert (
        "- kernels/undeclared.py: changed by the change but not declared in the attestation" in latest.output["summary"]
    )
    assert "| `kernels/undeclared.py` | not attested |" in latest.output["summary"]


def test_attestation_subjects_are_sha256_of_the_committed_files(fake, app, onboarded):
    repo, inst = onboarded
    change = make_change("hyp-1")
    publish(app, inst, change)
    [pr] = bot_pulls(repo)
    files = files_at(repo, pr.head_sha)
    statement = json.loads(files[change["attestation"]])
    for subject in statement["subject"]:
        assert hashlib.sha256(files[subject["name"]].encode()).hexdigest() == subject["digest"]["sha256"]


def test_a_change_can_delete_a_file(fake, app, onboarded):
    repo, inst = onboarded
    change = make_change(
        "retire-1",
        files={
            "kernels/softmax.py": None,
            "kernels/never_there.py": None,
            "kernels/softmax_v3.py": "def v3(x):\n    return x\n",
        },
    )
    publish(app, inst, change)
    [pr] = bot_pulls(repo)
    files = files_at(repo, pr.head_sha)
    assert "kernels/softmax.py" not in files and "kernels/softmax_v3.py" in files
    assert "kernels/__init__.py" in files
