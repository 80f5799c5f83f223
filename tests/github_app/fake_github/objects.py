"""The JSON GitHub answers with, built from the fake's state.

Field sets follow GitHub's REST description (every required field, with its type); the
fake's response validation keeps them honest.
"""

from __future__ import annotations

import base64
import time
from typing import Any


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def node_id(kind: str, ident: Any) -> str:
    return base64.b64encode(f"0:{kind}{ident}".encode()).decode()


class Urls:
    def __init__(self, api: str, web: str):
        self.api = api.rstrip("/")
        self.web = web.rstrip("/")


def user(u: Urls, login: str, ident: int, kind: str = "User") -> dict[str, Any]:
    api = f"{u.api}/users/{login}"
    return {
        "login": login,
        "id": ident,
        "node_id": node_id("User", ident),
        "avatar_url": f"{u.web}/avatars/{ident}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{u.web}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "site_admin": False,
        "user_view_type": "public",
    }


def repository(u: Urls, repo, owner_json: dict[str, Any], *, full: bool = False) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}"
    created = iso(repo.created_at)
    data = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "owner": owner_json,
        "private": False,
        "html_url": f"{u.web}/{repo.full_name}",
        "description": repo.description,
        "fork": False,
        "url": api,
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "assignees_url": f"{api}/assignees{{/user}}",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "comments_url": f"{api}/comments{{/number}}",
        "commits_url": f"{api}/commits{{/sha}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "contributors_url": f"{api}/contributors",
        "deployments_url": f"{api}/deployments",
        "downloads_url": f"{api}/downloads",
        "events_url": f"{api}/events",
        "forks_url": f"{api}/forks",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_url": f"git:{u.web[4:]}/{repo.full_name}.git",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "issues_url": f"{api}/issues{{/number}}",
        "keys_url": f"{api}/keys{{/key_id}}",
        "labels_url": f"{api}/labels{{/name}}",
        "languages_url": f"{api}/languages",
        "merges_url": f"{api}/merges",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "releases_url": f"{api}/releases{{/id}}",
        "ssh_url": f"git@{u.web.split('//')[1]}:{repo.full_name}.git",
        "stargazers_url": f"{api}/stargazers",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "tags_url": f"{api}/tags",
        "teams_url": f"{api}/teams",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "clone_url": f"{u.web}/{repo.full_name}.git",
        "mirror_url": None,
        "hooks_url": f"{api}/hooks",
        "svn_url": f"{u.web}/{repo.full_name}",
        "homepage": None,
        "language": "Python",
        "forks_count": 0,
        "forks": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "watchers": 0,
        "size": 1,
        "default_branch": repo.default_branch,
        "open_issues_count": repo.open_issues(),
        "open_issues": repo.open_issues(),
        "is_template": False,
        "topics": [],
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "public",
        "pushed_at": iso(repo.pushed_at),
        "created_at": created,
        "updated_at": created,
        "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
        "allow_forking": True,
        "web_commit_signoff_required": False,
        "license": None,
    }
    if full:
        data.update(
            {
                "network_count": 0,
                "subscribers_count": 0,
                "temp_clone_token": None,
                "allow_squash_merge": True,
                "allow_merge_commit": True,
                "allow_rebase_merge": True,
                "delete_branch_on_merge": False,
            }
        )
    return data


def label(u: Urls, repo, lab) -> dict[str, Any]:
    return {
        "id": lab.id,
        "node_id": node_id("Label", lab.id),
        "url": f"{u.api}/repos/{repo.full_name}/labels/{lab.name}",
        "name": lab.name,
        "description": lab.description,
        "color": lab.color,
        "default": False,
    }


def reactions(api: str) -> dict[str, Any]:
    return {
        "url": f"{api}/reactions",
        "total_count": 0,
        "+1": 0,
        "-1": 0,
        "laugh": 0,
        "confused": 0,
        "heart": 0,
        "hooray": 0,
        "eyes": 0,
        "rocket": 0,
    }


def issue(u: Urls, repo, iss, user_json, labels_json) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/issues/{iss.number}"
    data = {
        "id": iss.id,
        "node_id": node_id("Issue", iss.id),
        "url": api,
        "repository_url": f"{u.api}/repos/{repo.full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{u.web}/{repo.full_name}/{'pull' if iss.is_pull else 'issues'}/{iss.number}",
        "number": iss.number,
        "state": iss.state,
        "title": iss.title,
        "body": iss.body,
        "user": user_json,
        "labels": labels_json,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "active_lock_reason": None,
        "comments": len(iss.comments),
        "closed_at": iso(iss.closed_at),
        "created_at": iso(iss.created_at),
        "updated_at": iso(iss.updated_at),
        "author_association": "NONE",
        "state_reason": None,
        "closed_by": None,
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": None,
        "reactions": reactions(api),
    }
    if iss.is_pull:
        pr_api = f"{u.api}/repos/{repo.full_name}/pulls/{iss.number}"
        data["pull_request"] = {
            "url": pr_api,
            "html_url": data["html_url"],
            "diff_url": data["html_url"] + ".diff",
            "patch_url": data["html_url"] + ".patch",
            "merged_at": iso(iss.merged_at),
        }
    return data


def comment(u: Urls, repo, c, user_json) -> dict[str, Any]:
    return {
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "url": f"{u.api}/repos/{repo.full_name}/issues/comments/{c.id}",
        "html_url": f"{u.web}/{repo.full_name}/issues/{c.issue}#issuecomment-{c.id}",
        "body": c.body,
        "user": user_json,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.created_at),
        "issue_url": f"{u.api}/repos/{repo.full_name}/issues/{c.issue}",
        "author_association": "NONE",
    }


def pull(u: Urls, repo, iss, user_json, labels_json, repo_json, *, short: bool = False, user_of=None) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/pulls/{iss.number}"
    html = f"{u.web}/{repo.full_name}/pull/{iss.number}"
    head = {
        "label": f"{repo.owner}:{iss.head_ref}",
        "ref": iss.head_ref,
        "sha": iss.head_sha,
        "user": repo_json["owner"],
        "repo": repo_json,
    }
    base = {
        "label": f"{repo.owner}:{iss.base_ref}",
        "ref": iss.base_ref,
        "sha": iss.base_sha,
        "user": repo_json["owner"],
        "repo": repo_json,
    }
    data = {
        "url": api,
        "id": iss.id,
        "node_id": node_id("PullRequest", iss.id),
        "html_url": html,
        "diff_url": html + ".diff",
        "patch_url": html + ".patch",
        "issue_url": f"{u.api}/repos/{repo.full_name}/issues/{iss.number}",
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{u.api}/repos/{repo.full_name}/pulls/comments{{/number}}",
        "comments_url": f"{u.api}/repos/{repo.full_name}/issues/{iss.number}/comments",
        "statuses_url": f"{u.api}/repos/{repo.full_name}/statuses/{iss.head_sha}",
        "number": iss.number,
        "state": iss.state,
        "locked": False,
        "title": iss.title,
        "user": user_json,
        "body": iss.body,
        "labels": labels_json,
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(iss.created_at),
        "updated_at": iso(iss.updated_at),
        "closed_at": iso(iss.closed_at),
        "merged_at": iso(iss.merged_at),
        "merge_commit_sha": iss.merge_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [user_of(login) for login in iss.requested_reviewers] if user_of else [],
        "requested_teams": [],
        "head": head,
        "base": base,
        "draft": False,
        "_links": {
            k: {"href": v}
            for k, v in {
                "self": api,
                "html": html,
                "issue": f"{u.api}/repos/{repo.full_name}/issues/{iss.number}",
                "comments": f"{u.api}/repos/{repo.full_name}/issues/{iss.number}/comments",
                "review_comments": f"{api}/comments",
                "review_comment": f"{u.api}/repos/{repo.full_name}/pulls/comments{{/number}}",
                "commits": f"{api}/commits",
                "statuses": f"{u.api}/repos/{repo.full_name}/statuses/{iss.head_sha}",
            }.items()
        },
        "author_association": "NONE",
        "auto_merge": None,
    }
    if not short:
        data.update(
            {
                "merged": iss.merged_at is not None,
                "mergeable": True,
                "rebaseable": True,
                "mergeable_state": "clean",
                "merged_by": iss.merged_by_json,
                "comments": len(iss.comments),
                "review_comments": 0,
                "maintainer_can_modify": False,
                "commits": 1,
                "additions": 1,
                "deletions": 0,
                "changed_files": 1,
            }
        )
    return data


def git_user(who: dict) -> dict[str, Any]:
    return {"name": who["name"], "email": who["email"], "date": iso(who["_epoch"])}


def git_commit(u: Urls, repo, c) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/git"
    return {
        "sha": c.sha,
        "node_id": node_id("Commit", c.sha[:12]),
        "url": f"{api}/commits/{c.sha}",
        "html_url": f"{u.web}/{repo.full_name}/commit/{c.sha}",
        "author": git_user(c.author),
        "committer": git_user(c.committer),
        "message": c.message,
        "tree": {"sha": c.tree, "url": f"{api}/trees/{c.tree}"},
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{u.web}/{repo.full_name}/commit/{p}"}
            for p in c.parents
        ],
        "verification": {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        },
    }


def git_ref(u: Urls, repo, name: str, sha: str) -> dict[str, Any]:
    return {
        "ref": name,
        "node_id": node_id("Ref", name),
        "url": f"{u.api}/repos/{repo.full_name}/git/{name}",
        "object": {"type": "commit", "sha": sha, "url": f"{u.api}/repos/{repo.full_name}/git/commits/{sha}"},
    }


def git_tree(u: Urls, repo, git, sha: str, recursive: bool) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/git"
    entries = git.walk(sha) if recursive else ((e.name, e) for e in git.trees[sha])
    out = []
    for path, e in entries:
        item = {
            "path": path,
            "mode": e.mode,
            "type": e.kind,
            "sha": e.sha,
            "url": f"{api}/{'trees' if e.kind == 'tree' else 'blobs'}/{e.sha}",
        }
        if e.kind == "blob":
            item["size"] = len(git.objects[e.sha][1])
        out.append(item)
    return {"sha": sha, "url": f"{api}/trees/{sha}", "tree": out, "truncated": False}


def content_file(u: Urls, repo, path: str, sha: str, data: bytes, ref: str) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/contents/{path}?ref={ref}"
    html = f"{u.web}/{repo.full_name}/blob/{ref}/{path}"
    git_url = f"{u.api}/repos/{repo.full_name}/git/blobs/{sha}"
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(data),
        "name": path.split("/")[-1],
        "path": path,
        "content": base64.encodebytes(data).decode(),
        "sha": sha,
        "url": api,
        "git_url": git_url,
        "html_url": html,
        "download_url": f"{u.web}/raw/{repo.full_name}/{ref}/{path}",
        "_links": {"self": api, "git": git_url, "html": html},
    }


def content_entry(u: Urls, repo, path: str, entry, ref: str, size: int) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/contents/{path}?ref={ref}"
    kind = "dir" if entry.kind == "tree" else "file"
    git_url = f"{u.api}/repos/{repo.full_name}/git/{'trees' if kind == 'dir' else 'blobs'}/{entry.sha}"
    html = f"{u.web}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    return {
        "type": kind,
        "size": size if kind == "file" else 0,
        "name": path.split("/")[-1],
        "path": path,
        "sha": entry.sha,
        "url": api,
        "git_url": git_url,
        "html_url": html,
        "download_url": f"{u.web}/raw/{repo.full_name}/{ref}/{path}" if kind == "file" else None,
        "_links": {"self": api, "git": git_url, "html": html},
    }


def integration(u: Urls, app, owner_json) -> dict[str, Any]:
    return {
        "id": app.id,
        "slug": app.slug,
        "node_id": node_id("Integration", app.id),
        "client_id": f"Iv1.{app.id:016x}",
        "owner": owner_json,
        "name": app.name,
        "description": "pytest-aina (fake)",
        "external_url": "https://example.invalid",
        "html_url": f"{u.web}/apps/{app.slug}",
        "created_at": iso(app.created_at),
        "updated_at": iso(app.created_at),
        "permissions": dict(app.permissions),
        "events": list(app.events),
        "installations_count": len(app.installations),
    }


def installation(u: Urls, app, inst, account_json) -> dict[str, Any]:
    # GitHub's description of GET /app/installations has the account as allOf
    # [Simple User, Enterprise], so an account carries the fields of both.
    account_json = {
        **account_json,
        "name": account_json["login"],
        "slug": account_json["login"],
        "created_at": iso(inst.created_at),
        "updated_at": iso(inst.created_at),
    }
    return {
        "id": inst.id,
        "account": account_json,
        "repository_selection": "selected",
        "access_tokens_url": f"{u.api}/app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{u.api}/installation/repositories",
        "html_url": f"{u.web}/settings/installations/{inst.id}",
        "app_id": app.id,
        "app_slug": app.slug,
        "target_id": account_json["id"],
        "target_type": account_json["type"],
        "permissions": dict(app.permissions),
        "events": list(app.events),
        "created_at": iso(inst.created_at),
        "updated_at": iso(inst.created_at),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": iso(inst.suspended_at),
    }


def check_run(u: Urls, repo, run, app_json) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/check-runs/{run.id}"
    return {
        "id": run.id,
        "head_sha": run.head_sha,
        "node_id": node_id("CheckRun", run.id),
        "external_id": run.external_id,
        "url": api,
        "html_url": f"{u.web}/{repo.full_name}/runs/{run.id}",
        "details_url": None,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": iso(run.started_at),
        "completed_at": iso(run.completed_at),
        "output": {
            "title": run.output.get("title"),
            "summary": run.output.get("summary"),
            "text": run.output.get("text"),
            "annotations_count": 0,
            "annotations_url": f"{api}/annotations",
        },
        "name": run.name,
        "check_suite": {"id": run.suite_id},
        "app": run.app or app_json,
        "pull_requests": [],
    }


def artifact(u: Urls, repo, a) -> dict[str, Any]:
    api = f"{u.api}/repos/{repo.full_name}/actions/artifacts/{a.id}"
    return {
        "id": a.id,
        "node_id": node_id("Artifact", a.id),
        "name": a.name,
        "size_in_bytes": len(a.data),
        "url": api,
        "archive_download_url": f"{api}/zip",
        "expired": a.expired,
        "created_at": iso(a.created_at),
        "expires_at": iso(a.created_at + 90 * 86400),
        "updated_at": iso(a.created_at),
        "workflow_run": {
            "id": a.run_id,
            "repository_id": repo.id,
            "head_repository_id": repo.id,
            "head_branch": "",
            "head_sha": a.head_sha,
        },
    }


def status(u: Urls, repo, st, creator_json) -> dict[str, Any]:
    return {
        "url": f"{u.api}/repos/{repo.full_name}/statuses/{st.sha}",
        "avatar_url": creator_json["avatar_url"],
        "id": st.id,
        "node_id": node_id("StatusContext", st.id),
        "state": st.state,
        "description": st.description,
        "target_url": st.target_url,
        "context": st.context,
        "created_at": iso(st.created_at),
        "updated_at": iso(st.created_at),
        "creator": creator_json,
    }


def delivery(d, *, detail: bool = False) -> dict[str, Any]:
    data = {
        "id": d.id,
        "guid": d.guid,
        "delivered_at": iso(d.delivered_at),
        "redelivery": d.redelivery,
        "duration": d.duration,
        "status": d.status,
        "status_code": d.status_code,
        "event": d.event,
        "action": d.action,
        "installation_id": d.installation_id,
        "repository_id": d.repository_id,
        "throttled_at": None,
    }
    if detail:
        data["url"] = d.url
        data["request"] = {"headers": d.headers, "payload": d.payload}
        data["response"] = {"headers": {}, "payload": d.response_body}
    return data
