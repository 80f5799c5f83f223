"""Which repositories the App serves: installation events, and a full sync at start-up."""

from __future__ import annotations

from github_app.github.installations import installation_repositories, installations
from github_app.github.pulls import branch_head
from github_app.jobs import JobContext, dashboard_job, handler
from github_app.store import JobSpec

ACTIVE_ACTIONS = ("created", "unsuspend", "new_permissions_accepted", "added")


def setup_job(repository: str, installation_id: int) -> JobSpec:
    return JobSpec(
        "repo_setup",
        {"repository": repository, "installation_id": installation_id},
        key=f"repo_setup:{repository}",
        repository=repository,
    )


def _remove(ctx: JobContext, repository: str, installation_id: int) -> None:
    ctx.store.upsert_repository(repository, installation_id, active=False)
    ctx.store.cancel_jobs(repository)


@handler("installation")
def installation(ctx: JobContext):
    p = ctx.payload
    inst, action = p["installation_id"], p["action"]
    if action in ("deleted", "suspend"):
        ctx.store.upsert_installation(inst, p["account"], active=False)
        for repo in ctx.store.repositories(inst):
            _remove(ctx, repo["full_name"], inst)
        ctx.services.auth.forget(inst)
        return {"installation": inst, "active": False}
    ctx.store.upsert_installation(inst, p["account"], active=True)
    for name in p.get("added", []):
        ctx.store.upsert_repository(name, inst)
        ctx.then(setup_job(name, inst))
    for name in p.get("removed", []):
        _remove(ctx, name, inst)
    if action in ("unsuspend", "new_permissions_accepted"):
        ctx.then(JobSpec("sync", {}, key="sync"))
    return {"installation": inst, "added": len(p.get("added", [])), "removed": len(p.get("removed", []))}


@handler("sync")
def sync(ctx: JobContext):
    """List every installation and its repositories (events missed while down)."""
    app = ctx.services.auth.app_client()
    seen = 0
    for inst in installations(app):
        account = (inst.account or {}).get("login", "")
        suspended = bool(getattr(inst, "suspended_at", None))
        ctx.store.upsert_installation(inst.id, account, active=not suspended)
        if suspended:
            continue
        names = set()
        for repo in installation_repositories(ctx.github(inst.id)):
            names.add(repo.full_name)
            known = ctx.store.repository(repo.full_name)
            ctx.store.upsert_repository(repo.full_name, inst.id, repo_id=repo.id)
            if known is None or not known["active"] or known["baseline_sha"] is None:
                ctx.then(setup_job(repo.full_name, inst.id))
        for repo in ctx.store.repositories(inst.id):
            if repo["full_name"] not in names:
                _remove(ctx, repo["full_name"], inst.id)
        seen += len(names)
    return {"repositories": seen}


@handler("repo_setup")
def repo_setup(ctx: JobContext):
    """Learn a repository's default branch and baseline, then draw its dashboard."""
    repo = ctx.repo()
    name, inst = ctx.payload["repository"], ctx.payload["installation_id"]
    branch = repo.default_branch
    ref = branch_head(repo, branch)  # None in an empty repository
    sha = ref.object.sha if ref is not None else None
    ctx.store.upsert_repository(name, inst, repo_id=repo.id, default_branch=branch)
    ctx.store.update_repository(name, baseline_sha=sha)
    ctx.finally_(dashboard_job(name, inst))
    return {"default_branch": branch, "baseline": sha}
