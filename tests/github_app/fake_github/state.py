"""What the fake remembers: the App, installations, users, repositories and their
git objects, refs, issues and PRs (one number sequence, as on GitHub), labels, comments,
check runs, statuses, and the App's webhook deliveries."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from .git import GitObjects


@dataclass
class AppState:
    id: int
    slug: str
    name: str
    public_key: str
    webhook_secret: str
    webhook_url: str | None = None
    created_at: float = field(default_factory=time.time)
    permissions: dict[str, str] = field(
        default_factory=lambda: {
            "contents": "write",
            "pull_requests": "write",
            "issues": "write",
            "checks": "write",
            "actions": "read",
            "statuses": "write",
            "metadata": "read",
        }
    )
    events: tuple[str, ...] = ("check_run", "check_suite", "issue_comment", "issues", "push", "pull_request")
    installations: dict[int, Installation] = field(default_factory=dict)


@dataclass
class Installation:
    id: int
    account: str
    repositories: set[str] = field(default_factory=set)
    created_at: float = field(default_factory=time.time)
    suspended_at: float | None = None


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None = None


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    user: str
    created_at: float = field(default_factory=time.time)


@dataclass
class Issue:
    """An issue, or a PR (``is_pull``): GitHub numbers both from one sequence."""

    id: int
    number: int
    title: str
    body: str | None
    user: str
    is_pull: bool = False
    state: str = "open"
    labels: list[str] = field(default_factory=list)  # label names, as applied
    comments: list[int] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    # PR only
    head_ref: str = ""
    head_sha: str = ""
    base_ref: str = ""
    base_sha: str = ""
    merged_at: float | None = None
    merge_sha: str | None = None
    merged_by_json: dict[str, Any] | None = None
    mergeable: bool = True  # False: GitHub refuses to merge it (405), as for a conflict
    requested_reviewers: list[str] = field(default_factory=list)  # logins
    requested_teams: list[str] = field(default_factory=list)  # team slugs (kept, not rendered)


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    external_id: str | None
    output: dict[str, Any]
    suite_id: int
    started_at: float | None
    completed_at: float | None
    app: dict[str, Any] | None = None  # the App that made it (None: ours)


@dataclass
class Artifact:
    """A GitHub Actions artifact: one zip of files, made by a workflow run."""

    id: int
    name: str
    data: bytes  # the zip
    head_sha: str
    run_id: int
    created_at: float = field(default_factory=time.time)
    expired: bool = False


@dataclass
class Status:
    id: int
    sha: str
    state: str
    description: str | None
    target_url: str | None
    context: str
    creator: str
    created_at: float = field(default_factory=time.time)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str = "main"
    description: str | None = None
    git: GitObjects = field(default_factory=GitObjects)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> sha
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower-cased name -> label
    comments: dict[int, Comment] = field(default_factory=dict)
    check_runs: list[CheckRun] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> permission
    artifacts: list[Artifact] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    pushed_at: float = field(default_factory=time.time)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def open_issues(self) -> int:
        return sum(1 for i in self.issues.values() if i.state == "open")

    def pulls(self) -> list[Issue]:
        return [i for i in self.issues.values() if i.is_pull]


@dataclass
class Delivery:
    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    payload: dict[str, Any]
    headers: dict[str, str]
    url: str
    redelivery: bool
    delivered_at: float
    duration: float = 0.0
    status: str = "pending"
    status_code: int = 0
    response_body: str = ""


class Ids:
    """One counter per kind, so ids look like GitHub's (distinct, increasing)."""

    def __init__(self, start: int = 1000) -> None:
        self._counters: dict[str, itertools.count] = {}
        self._start = start

    def next(self, kind: str) -> int:
        counter = self._counters.setdefault(kind, itertools.count(self._start))
        return next(counter)
