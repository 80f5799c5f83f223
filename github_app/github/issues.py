"""The App's own issue on a repository (the dashboard), looked up before it is made.

A run that dies after GitHub created the issue and before the App recorded its number
leaves the issue on GitHub; the next run adopts it by its label and by the marker its body
starts with, so a repository never gets two.
"""

from __future__ import annotations

from github_app.github.pulls import ensure_labels


def find_issue(repo, number: int | None, *, label: str, marker: str):
    """Issue ``number`` when the App knows it; else the ``label``led issue whose body starts
    with ``marker``; else None."""
    if number:
        return repo.issue(number)
    for candidate in repo.issues(labels=label, state="all"):
        if (candidate.body or "").startswith(marker):
            return repo.issue(candidate.number)
    return None


def create_issue(repo, title: str, body: str, *, label: str):
    ensure_labels(repo, [label])
    return repo.create_issue(title, body=body, labels=[label])


def set_body(issue, body: str) -> bool:
    """Make ``body`` the issue's text; False when it already was (no edit, no notification)."""
    if (issue.body or "") == body:
        return False
    issue.edit(body=body)
    return True
