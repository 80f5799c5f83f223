"""Every side effect the App has on a repository, through github3.py.

Each operation looks before it acts, so a job that died half-way (a worker killed, a
request that timed out after GitHub had done the work) can run again from the start and
leave exactly what one clean run leaves: git objects are content-addressed; the branch is
moved only when its commit is not already the one we want; a PR is looked up by its head
branch before one is created; labels are replaced, not added.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest_aina.changer.change.attestation as att
from pytest_aina.changer.change import Change, verify
from pytest_aina.changer.change.model import BOT_LABEL, is_bot_branch

log = logging.getLogger(__name__)
CHECK_NAME = "aina / provenance"
MARKER = "<!-- aina:hypothesis={} -->"

LABEL_COLOURS = {
    "aina": "5319e7",
    "kernel:": "0e8a16",
    "risk:low": "c2e0c6",
    "risk:medium": "fbca04",
    "risk:high": "d93f0b",
    "aina-dashboard": "5319e7",
}

COMMANDS_HELP = (
    "Commands (in a comment, from someone with write access): `/aina rebase` rebuilds this "
    "change on the current default branch, `/aina retry` runs the evolution again, "
    "`/aina close` closes this PR, `/aina merge` merges it once the gate has passed."
)


@dataclass(frozen=True)
class Published:
    number: int
    branch: str
    head_sha: str
    created: bool
    url: str


def label_colour(name: str) -> str:
    for prefix, colour in LABEL_COLOURS.items():
        if name == prefix or (prefix.endswith(":") and name.startswith(prefix)):
            return colour
    return "ededed"


def ensure_labels(repo, names) -> None:
    from github3.exceptions import NotFoundError, UnprocessableEntity

    for name in names:
        try:
            repo.label(name)
        except NotFoundError:
            try:
                repo.create_label(name, label_colour(name))
            except UnprocessableEntity:  # another worker created it meanwhile
                pass


def pr_body(change: Change, note: str | None = None) -> str:
    """The Changer's body, then what the App adds: ``note`` (the track record of earlier
    claims), who it is for, commands, and a marker that lets the App find its PR again from
    GitHub alone."""
    return (
        f"{change.body.rstrip()}\n\n---\n"
        + (f"{note}\n\n" if note else "")
        + f"Hypothesis `{change.hypothesis_id}`"
        + (f" · kernel `{change.kernel}`" if change.kernel else "")
        + f" · provenance: [`{change.attestation}`]({change.attestation})\n\n"
        f"{COMMANDS_HELP}\n\n{MARKER.format(change.hypothesis_id)}\n"
    )


def pr_labels(change: Change) -> list[str]:
    labels = [BOT_LABEL]
    if change.kernel:
        labels.append(f"kernel:{change.kernel}")
    labels.extend(x for x in change.labels if x not in labels)
    return labels


def branch_head(repo, branch: str):
    """The ref of ``branch``, or None."""
    from github3.exceptions import NotFoundError

    try:
        return repo.ref(f"heads/{branch}")
    except NotFoundError:
        return None


def commit_change(repo, change: Change, *, base_sha: str, branch: str) -> str:
    """Make ``branch`` one commit on ``base_sha`` holding ``change``; the commit's sha."""
    base_commit = repo.git_commit(base_sha)
    base_tree = base_commit.tree.sha
    deletions = [p for p, c in change.files.items() if c is None]
    present: set[str] = set()
    if deletions:
        tree = repo.tree(base_tree, recursive=True)
        present = {e.path for e in tree.tree if e.type == "blob"}
    entries = []
    for path, content in sorted(change.files.items()):
        if content is None:
            if path in present:
                entries.append({"path": path, "mode": "100644", "type": "blob", "sha": None})
            continue
        sha = repo.create_blob(base64.b64encode(content.encode("utf-8")).decode("ascii"), "base64")
        entries.append({"path": path, "mode": "100644", "type": "blob", "sha": sha})
    tree = repo.create_tree(entries, base_tree) if entries else base_commit.tree
    ref = branch_head(repo, branch)
    if ref is not None:
        head = repo.git_commit(ref.object.sha)
        if head.tree.sha == tree.sha and [p["sha"] for p in head.parents] == [base_sha]:
            return head.sha  # already there: a resumed job, or the same change again
    message = f"{change.title}\n\nHypothesis: {change.hypothesis_id}\nProvenance: {change.attestation}\n"
    commit = repo.create_commit(message, tree.sha, [base_sha])
    if ref is None:
        from github3.exceptions import UnprocessableEntity

        try:
            repo.create_ref(f"refs/heads/{branch}", commit.sha)
        except UnprocessableEntity:  # created meanwhile (a resumed job): move it instead
            branch_head(repo, branch).update(commit.sha, force=True)
    else:
        ref.update(commit.sha, force=True)
    return commit.sha


def find_pull(repo, branch: str, number: int | None = None):
    """The open PR for ``number``, else the open PR whose head is ``branch``, else None."""
    from github3.exceptions import NotFoundError

    if number is not None:
        try:
            pr = repo.pull_request(number)
        except NotFoundError:
            pr = None
        if pr is not None and pr.state == "open":
            return pr
    owner = repo.owner.login
    for pr in repo.pull_requests(state="open", head=f"{owner}:{branch}"):
        return pr
    return None


def publish(
    repo,
    change: Change,
    *,
    base_branch: str,
    existing_number: int | None = None,
    existing_branch: str | None = None,
    note: str | None = None,
) -> Published:
    """Open the PR for ``change``, or update the open one in place (never a second one)."""
    base_sha = repo.ref(f"heads/{base_branch}").object.sha
    branch = existing_branch or change.branch
    head_sha = commit_change(repo, change, base_sha=base_sha, branch=branch)
    body = pr_body(change, note)
    pr = find_pull(repo, branch, existing_number)
    created = pr is None
    if pr is None:
        pr = repo.create_pull(change.title, base_branch, branch, body)
    elif pr.title != change.title or (pr.body or "") != body:
        pr.update(title=change.title, body=body)
    labels = pr_labels(change)
    ensure_labels(repo, labels)
    set_labels(repo, pr.number, labels)
    return Published(pr.number, branch, head_sha, created, pr.html_url)


def set_labels(repo, number: int, labels: list[str]) -> None:
    """Replace the labels of issue/PR ``number``. (github3's ``replace_labels`` sends a bare
    list; GitHub's published API wants ``{"labels": [...]}``.)"""
    url = repo._build_url("issues", str(number), "labels", base_url=repo._api)
    repo._json(repo._put(url, data=json.dumps({"labels": labels})), 200)


def close_pull(repo, number: int, comment: str, *, delete_branch: bool = True) -> bool:
    """Comment on and close PR ``number``; False if it was already closed."""
    from github3.exceptions import NotFoundError, UnprocessableEntity

    pr = repo.pull_request(number)
    if pr.state != "open":
        return False
    if comment:
        issue = repo.issue(number)
        if not any(c.body == comment for c in issue.comments()):
            issue.create_comment(comment)
    pr.close()
    if delete_branch and is_bot_branch(pr.head.ref):
        ref = branch_head(repo, pr.head.ref)
        if ref is not None:
            try:
                ref.delete()
            except (NotFoundError, UnprocessableEntity):
                pass
    return True


def comment_once(repo, number: int, body: str) -> None:
    """Post ``body`` on issue/PR ``number`` unless the same text is already there (a
    resumed job must not say the same thing twice)."""
    issue = repo.issue(number)
    if any(c.body == body for c in issue.comments()):
        return
    issue.create_comment(body)


def has_write_access(repo, login: str) -> bool:
    """Whether ``login`` may push to ``repo`` (admin, maintain or write)."""
    from github3.exceptions import NotFoundError

    url = repo._build_url("collaborators", login, "permission", base_url=repo._api)
    try:
        data = repo._json(repo._get(url), 200) or {}
    except NotFoundError:
        return False
    role = data.get("role_name") or ""
    return data.get("permission") in ("admin", "write") or role in ("admin", "maintain", "write")


def check_provenance(repo, head_sha: str, change: Change) -> tuple[str, str, str]:
    """The App's check of a bot PR's head: :func:`pytest_aina.changer.change.verify` (the
    one provenance check, the merge gate's too) on what the head changes on top of the
    commit its attestation says the change was made on, with the head's parent as the PR's
    base (a bot PR is one commit on its base).

    Returns (conclusion, title, summary): the problems, then a table of the files.
    """
    from github3.exceptions import NotFoundError, UnprocessableEntity

    head = repo.git_commit(head_sha)
    parent = head.parents[0]["sha"] if head.parents else None
    statement = file_at(repo, head.tree.sha, change.attestation)
    stmt = att.parse(statement) or {}
    made_on = att.base_commit(stmt)
    start = parent
    if made_on is not None and made_on != parent:
        try:
            repo.git_commit(made_on)
            start = made_on  # the change as attested: everything the head differs from its base by
        except (NotFoundError, UnprocessableEntity):
            pass  # not a commit of this repository: judged against the parent, and the base rule says why
    changed = changed_files(repo, start, head_sha)
    problems = verify(changed, attestation=change.attestation, base=parent, statement=statement)
    rows = [
        f"| `{path}` | {status} |" for path, status, _ in att.check_files(changed, stmt, attestation=change.attestation)
    ]
    table = "| file | attestation |\n| --- | --- |\n" + "\n".join(rows)
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        return "failure", f"{len(problems)} problem(s) with the provenance", f"{listed}\n\n{table}"
    return "success", "Every changed file matches its attestation", table


def changed_files(repo, base_sha: str | None, head_sha: str) -> dict[str, bytes | None]:
    """What ``head_sha`` changes on top of ``base_sha``: path -> content at the head (None:
    deleted), from the two trees through the git data API."""
    head = _blobs(repo, repo.git_commit(head_sha).tree.sha)
    base = _blobs(repo, repo.git_commit(base_sha).tree.sha) if base_sha else {}
    out: dict[str, bytes | None] = {}
    for path in sorted(set(head) | set(base)):
        if head.get(path) != base.get(path):
            out[path] = _blob(repo, head[path]) if path in head else None
    return out


def paths_at(repo, tree_sha: str) -> set[str]:
    """Every file path of the tree ``tree_sha``."""
    return set(_blobs(repo, tree_sha))


def file_at(repo, tree_sha: str, path: str) -> bytes | None:
    sha = _blobs(repo, tree_sha).get(path)
    return _blob(repo, sha) if sha else None


def _blobs(repo, tree_sha: str) -> dict[str, str]:
    return {e.path: e.sha for e in repo.tree(tree_sha, recursive=True).tree if e.type == "blob"}


def _blob(repo, sha: str) -> bytes:
    blob = repo.blob(sha)
    return base64.b64decode(blob.content) if blob.encoding == "base64" else blob.content.encode()


def post_check(repo, head_sha: str, conclusion: str, title: str, summary: str, external_id: str) -> int:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = repo.create_check_run(
        CHECK_NAME,
        head_sha,
        external_id=external_id,
        status="completed",
        conclusion=conclusion,
        completed_at=now,
        output={"title": title, "summary": summary[:65_000]},
    )
    return run.id
