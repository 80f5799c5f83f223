"""What merging a bot PR asks of GitHub: the gate's verdict, the merge, reviewers, the soak status.

**How the verdict reaches the App.** The ``aina`` workflow's ``gate`` job (the check
GitHub shows as ``aina / gate``; its check run is named ``gate``, made by GitHub Actions)
uploads ``aina-gate.json`` (the ``aina-gate/v1`` verdict, :func:`pytest_aina.gate.as_json`)
in the artifact ``aina-gate-<head sha>`` (``.github/workflows/gate.yml``). The App reads
the newest completed gate check run on the head (its conclusion), then that artifact by
name (``GET /actions/artifacts?name=``, then its zip). Nothing new is published for the
App: it reads what CI already keeps for 90 days.

Like :mod:`.pulls`, every call here can be made again: the merge names the head it judged
(``sha``), so GitHub refuses (409) rather than merge a newer push, and a PR merged by an
earlier try is seen as merged before anything is asked.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Names the gate's check run has: GitHub Actions names it after the job (``gate``); the
#: UI shows it as ``aina / gate`` (workflow / job), which a check made otherwise may use.
GATE_CHECKS = ("gate", "aina / gate")
VERDICT_FILE = "aina-gate.json"
SOAK_CONTEXT = "aina / soak"
MAX_ARTIFACT_BYTES = 20 * 1024 * 1024


def artifact_name(head_sha: str) -> str:
    return f"aina-gate-{head_sha}"


@dataclass(frozen=True)
class GateReport:
    conclusion: str | None  # of the newest completed gate check run (None: none completed)
    verdict: dict[str, Any] | None  # aina-gate.json from its artifact (None: not found)
    check_run: int | None = None


@dataclass(frozen=True)
class MergeOutcome:
    merged: bool
    status: int  # GitHub's answer: 200, or the refusal (405, 409, 422)
    message: str
    sha: str | None = None


def _url(repo, *parts: str) -> str:
    return repo._build_url(*parts, base_url=repo._api)


def gate_report(repo, head_sha: str) -> GateReport:
    """The gate's word on ``head_sha``: the newest completed gate check run, and its verdict."""
    runs = repo._json(repo._get(_url(repo, "commits", head_sha, "check-runs"), params={"per_page": 100}), 200) or {}
    done = [
        r
        for r in runs.get("check_runs") or []
        if r.get("name") in GATE_CHECKS and r.get("status") == "completed" and r.get("head_sha") == head_sha
    ]
    if not done:
        return GateReport(None, None)
    run = max(done, key=lambda r: (r.get("completed_at") or "", r.get("id") or 0))
    return GateReport(run.get("conclusion"), read_verdict(repo, head_sha), run.get("id"))


def read_verdict(repo, head_sha: str) -> dict[str, Any] | None:
    """``aina-gate.json`` from the newest unexpired artifact ``aina-gate-<head_sha>``."""
    listed = repo._json(
        repo._get(_url(repo, "actions", "artifacts"), params={"name": artifact_name(head_sha), "per_page": 10}), 200
    )
    artifacts = [a for a in (listed or {}).get("artifacts") or [] if not a.get("expired")]
    if not artifacts:
        return None
    newest = max(artifacts, key=lambda a: (a.get("created_at") or "", a.get("id") or 0))
    if (newest.get("size_in_bytes") or 0) > MAX_ARTIFACT_BYTES:
        log.warning("artifact %s is too large to read (%s bytes)", newest.get("name"), newest.get("size_in_bytes"))
        return None
    # 302 to a short-lived download URL; requests follows it (and drops our token when the
    # host changes, as it should)
    response = repo._get(_url(repo, "actions", "artifacts", str(newest["id"]), "zip"))
    if response.status_code != 200:
        log.warning("artifact %s: download answered %s", newest.get("name"), response.status_code)
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(response.content)) as z:
            data = json.loads(z.read(VERDICT_FILE).decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        log.warning("artifact %s holds no readable %s: %s", newest.get("name"), VERDICT_FILE, exc)
        return None
    return data if isinstance(data, dict) else None


def merge(repo, number: int, head_sha: str, method: str, title: str | None = None) -> MergeOutcome:
    """``PUT /pulls/{number}/merge`` of exactly ``head_sha``. GitHub's refusals (405: not
    mergeable, e.g. a conflict or a required check missing; 409: the head moved; 422) are
    returned, never retried or forced."""
    body: dict[str, Any] = {"sha": head_sha, "merge_method": method}
    if title:
        body["commit_title"] = title[:250]
    response = repo._put(_url(repo, "pulls", str(number), "merge"), data=json.dumps(body))
    if response.status_code in (405, 409, 422):
        try:
            message = str((response.json() or {}).get("message") or "")
        except ValueError:
            message = response.text[:500]
        return MergeOutcome(False, response.status_code, message)
    data = repo._json(response, 200) or {}
    return MergeOutcome(bool(data.get("merged")), 200, str(data.get("message") or ""), data.get("sha"))


def request_reviewers(repo, number: int, reviewers, team_reviewers) -> str | None:
    """Ask ``reviewers``/``team_reviewers`` to review PR ``number``; None, or GitHub's reason
    for refusing (422: not a collaborator, no such team)."""
    reviewers, team_reviewers = list(reviewers), list(team_reviewers)
    if not reviewers and not team_reviewers:
        return None
    response = repo._post(
        _url(repo, "pulls", str(number), "requested_reviewers"),
        data={"reviewers": reviewers, "team_reviewers": team_reviewers},
    )
    if response.status_code == 422:
        try:
            return str((response.json() or {}).get("message") or "refused")
        except ValueError:
            return "refused"
    repo._json(response, 201)
    return None


def soak_status(repo, head_sha: str, state: str, description: str, target_url: str | None = None) -> None:
    """The commit status ``aina / soak`` on ``head_sha`` (pending while the PR soaks)."""
    repo.create_status(head_sha, state, target_url=target_url, description=description[:140], context=SOAK_CONTEXT)


def head_time(repo, head_sha: str) -> str | None:
    """When the head commit was made (its committer date, ISO 8601): for a bot PR, when the
    App pushed it, which starts the soak."""
    commit = repo.git_commit(head_sha)
    committer = getattr(commit, "committer", None) or {}
    return committer.get("date") if isinstance(committer, dict) else None
