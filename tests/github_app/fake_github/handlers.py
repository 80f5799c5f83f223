"""The fake's operations, one function per ``operationId`` of GitHub's REST description.

A handler gets the fake (state lock held) and the request, and returns ``(status, body,
headers)`` or raises :class:`HttpError` with GitHub's error shape.
"""

from __future__ import annotations

import base64
import calendar
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from . import objects as O
from .state import CheckRun, Comment, Issue, Label, Status

HANDLERS: dict[str, Any] = {}
DOCS = "https://docs.github.com/rest"


class HttpError(Exception):
    def __init__(
        self, status: int, message: str, errors: list[dict] | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "documentation_url": DOCS}
        if self.errors is not None:
            out["errors"] = self.errors
            out["status"] = str(self.status)
        return out


def op(operation_id: str):
    def deco(fn):
        HANDLERS[operation_id] = fn
        return fn

    return deco


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None):
    return status, body, headers or {}


def invalid(resource: str, field: str, code: str = "invalid", message: str | None = None):
    err = {"resource": resource, "code": code, "field": field}
    if message:
        err["message"] = message
    return HttpError(422, "Validation Failed", [err])


# -- helpers ------------------------------------------------------------------------------------
def repo_of(fake, ctx):
    repo = fake.repos.get(f"{ctx.params['owner']}/{ctx.params['repo']}".lower())
    inst = ctx.auth.get("installation")
    if repo is None or inst is None or repo.full_name.lower() not in inst.repositories:
        raise HttpError(404, "Not Found")
    return repo


def actor(ctx) -> str:
    """Who acts: an installation token acts as the App's bot user."""
    return "aina-test[bot]"


def paginate(fake, items: list, ctx) -> tuple[list, dict[str, str]]:
    per_page = int(ctx.arg("per_page", "30"))
    page = int(ctx.arg("page", "1"))
    chunk = items[(page - 1) * per_page : page * per_page]
    headers = {}
    if page * per_page < len(items):
        from flask import request

        args = {k: v[-1] for k, v in ctx.query.items()}
        args["page"] = str(page + 1)
        headers["Link"] = f'<{fake.root}{request.path}?{urlencode(args)}>; rel="next"'
    return chunk, headers


def resolve_commit(repo, ref: str) -> str:
    if ref in repo.git.commits:
        return ref
    for name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/{ref}"):
        if name in repo.refs:
            return repo.refs[name]
    raise HttpError(404, f"No commit found for the ref {ref}")


def labels_json(fake, repo, names) -> list[dict]:
    return [O.label(fake.urls, repo, repo.labels[n.lower()]) for n in names if n.lower() in repo.labels]


def with_media(data: dict) -> dict:
    """GitHub's "full" media type (``application/vnd.github.v3.full+json``, which github3
    asks for) adds the body rendered as text and HTML."""
    from flask import has_request_context, request

    if has_request_context() and ".full+json" in request.headers.get("Accept", ""):
        body = data.get("body") or ""
        data["body_text"] = body
        data["body_html"] = "<p>" + body.replace("&", "&amp;").replace("<", "&lt;") + "</p>"
    return data


def issue_json(fake, repo, iss: Issue) -> dict:
    return with_media(O.issue(fake.urls, repo, iss, fake.user_json(iss.user), labels_json(fake, repo, iss.labels)))


def pull_json(fake, repo, iss: Issue, short: bool = False) -> dict:
    repo_json = O.repository(fake.urls, repo, fake.user_json(repo.owner))
    return with_media(
        O.pull(
            fake.urls,
            repo,
            iss,
            fake.user_json(iss.user),
            labels_json(fake, repo, iss.labels),
            repo_json,
            short=short,
            user_of=fake.user_json,
        )
    )


def comment_json(fake, repo, c: Comment) -> dict:
    return with_media(O.comment(fake.urls, repo, c, fake.user_json(c.user)))


def add_comment(fake, repo, number: int, body: str, login: str) -> Comment:
    c = Comment(fake.ids.next("comment"), number, body, login)
    repo.comments[c.id] = c
    repo.issues[number].comments.append(c.id)
    return c


def app_json(fake) -> dict:
    return O.integration(fake.urls, fake.app, fake.user_json("octo-org"))


# -- the App ---------------------------------------------------------------------------------------
@op("apps/get-authenticated")
def get_app(fake, ctx):
    return ok(app_json(fake))


@op("apps/list-installations")
def list_installations(fake, ctx):
    items = [O.installation(fake.urls, fake.app, i, fake.user_json(i.account)) for i in fake.app.installations.values()]
    chunk, headers = paginate(fake, items, ctx)
    return ok(chunk, headers=headers)


@op("apps/get-installation")
def get_installation(fake, ctx):
    inst = fake.app.installations.get(int(ctx.params["installation_id"]))
    if inst is None:
        raise HttpError(404, "Not Found")
    return ok(O.installation(fake.urls, fake.app, inst, fake.user_json(inst.account)))


@op("apps/create-installation-access-token")
def create_token(fake, ctx):
    inst = fake.app.installations.get(int(ctx.params["installation_id"]))
    if inst is None:
        raise HttpError(404, "Not Found")
    if inst.suspended_at is not None:
        raise HttpError(403, "This installation has been suspended")
    token = "ghs_" + secrets.token_urlsafe(27)[:36]
    expires = time.time() + fake.token_lifetime
    fake.tokens[token] = (inst.id, expires)
    return ok(
        {
            "token": token,
            "expires_at": O.iso(expires),
            "permissions": dict(fake.app.permissions),
            "repository_selection": "selected",
        },
        201,
    )


@op("apps/list-repos-accessible-to-installation")
def installation_repos(fake, ctx):
    inst = ctx.auth["installation"]
    repos = [
        O.repository(fake.urls, fake.repos[n], fake.user_json(fake.repos[n].owner))
        for n in sorted(inst.repositories)
        if n in fake.repos
    ]
    chunk, headers = paginate(fake, repos, ctx)
    return ok({"total_count": len(repos), "repositories": chunk}, headers=headers)


@op("apps/list-webhook-deliveries")
def list_deliveries(fake, ctx):
    per_page = int(ctx.arg("per_page", "30"))
    cursor = ctx.arg("cursor")
    items = sorted(fake.deliveries, key=lambda d: d.id, reverse=True)
    if cursor:
        items = [d for d in items if d.id < int(cursor)]
    chunk = items[:per_page]
    headers = {}
    if len(items) > per_page:
        headers["Link"] = f'<{fake.api_url}/app/hook/deliveries?per_page={per_page}&cursor={chunk[-1].id}>; rel="next"'
    return ok([O.delivery(d) for d in chunk], headers=headers)


def _delivery(fake, ctx):
    ident = int(ctx.params["delivery_id"])
    for d in fake.deliveries:
        if d.id == ident:
            return d
    raise HttpError(404, "Not Found")


@op("apps/get-webhook-delivery")
def get_delivery(fake, ctx):
    return ok(O.delivery(_delivery(fake, ctx), detail=True))


@op("apps/redeliver-webhook-delivery")
def redeliver(fake, ctx):
    fake.redeliver(_delivery(fake, ctx))
    return ok({}, 202)


# -- repositories -----------------------------------------------------------------------------
@op("repos/get")
def get_repo(fake, ctx):
    repo = repo_of(fake, ctx)
    return ok(O.repository(fake.urls, repo, fake.user_json(repo.owner), full=True))


@op("repos/get-collaborator-permission-level")
def permission(fake, ctx):
    repo = repo_of(fake, ctx)
    login = ctx.params["username"]
    if login not in fake.users:
        raise HttpError(404, "Not Found")
    level = repo.collaborators.get(login, "read")
    role = {"admin": "admin", "maintain": "maintain", "write": "write", "triage": "triage"}.get(level, "read")
    legacy = {"maintain": "write", "triage": "read"}.get(level, level)
    user = fake.user_json(login)
    user["permissions"] = {
        "admin": level == "admin",
        "maintain": level in ("admin", "maintain"),
        "push": legacy in ("admin", "write"),
        "triage": True,
        "pull": True,
    }
    user["role_name"] = role
    return ok({"permission": legacy, "role_name": role, "user": user})


@op("repos/get-content")
def get_content(fake, ctx):
    repo = repo_of(fake, ctx)
    ref = ctx.arg("ref") or repo.default_branch
    sha = resolve_commit(repo, ref)
    tree = repo.git.commits[sha].tree
    path = ctx.params["path"].strip("/")
    for entry_path, entry in repo.git.walk(tree):
        if entry_path == path:
            if entry.kind == "blob":
                data = repo.git.objects[entry.sha][1]
                return ok(O.content_file(fake.urls, repo, path, entry.sha, data, ref))
            items = [
                O.content_entry(
                    fake.urls,
                    repo,
                    f"{path}/{e.name}",
                    e,
                    ref,
                    len(repo.git.objects[e.sha][1]) if e.kind == "blob" else 0,
                )
                for e in repo.git.trees[entry.sha]
            ]
            return ok(items)
    if path == "":
        return ok(
            [
                O.content_entry(
                    fake.urls, repo, e.name, e, ref, len(repo.git.objects[e.sha][1]) if e.kind == "blob" else 0
                )
                for e in repo.git.trees[tree]
            ]
        )
    raise HttpError(404, "Not Found")


@op("repos/create-or-update-file-contents")
def put_content(fake, ctx):
    repo = repo_of(fake, ctx)
    body = ctx.body
    branch = body.get("branch") or repo.default_branch
    ref = f"refs/heads/{branch}"
    parent = repo.refs.get(ref)
    files = repo.git.flatten(repo.git.commits[parent].tree) if parent else {}
    path = ctx.params["path"]
    if path in files and body.get("sha") != files[path][1]:
        raise invalid("Content", "sha", "missing" if not body.get("sha") else "invalid")
    try:
        data = base64.b64decode(body["content"], validate=True)
    except ValueError:
        raise invalid("Content", "content") from None
    blob = repo.git.blob(data)
    files[path] = ("100644", blob)
    tree = repo.git.build(files)
    who = {"name": "aina-test[bot]", "email": "bot@example.com", "_epoch": time.time()}
    sha = repo.git.commit(tree, [parent] if parent else [], body["message"], who, who)
    repo.refs[ref] = sha
    commit = O.git_commit(fake.urls, repo, repo.git.commits[sha])
    entry = O.content_entry(fake.urls, repo, path, type("E", (), {"kind": "blob", "sha": blob})(), branch, len(data))
    return ok({"content": entry, "commit": commit}, 201)


@op("repos/download-tarball-archive")
def tarball(fake, ctx):
    repo = repo_of(fake, ctx)
    sha = resolve_commit(repo, ctx.params["ref"])
    return ok(None, 302, {"Location": f"{fake.root}/_codeload/{repo.owner}/{repo.name}/{sha}"})


@op("repos/create-commit-status")
def create_status(fake, ctx):
    repo = repo_of(fake, ctx)
    sha = ctx.params["sha"]
    if sha not in repo.git.commits:
        raise HttpError(422, "No commit found for SHA: " + sha)
    st = Status(
        fake.ids.next("status"),
        sha,
        ctx.body["state"],
        ctx.body.get("description"),
        ctx.body.get("target_url"),
        ctx.body.get("context") or "default",
        actor(ctx),
    )
    repo.statuses.append(st)
    return ok(O.status(fake.urls, repo, st, fake.user_json(st.creator)), 201)


def _statuses(repo, ref):
    sha = resolve_commit(repo, ref)
    return sha, [s for s in reversed(repo.statuses) if s.sha == sha]


@op("repos/list-commit-statuses-for-ref")
def list_statuses(fake, ctx):
    repo = repo_of(fake, ctx)
    _, items = _statuses(repo, ctx.params["ref"])
    return ok([O.status(fake.urls, repo, s, fake.user_json(s.creator)) for s in items])


@op("repos/get-combined-status-for-ref")
def combined_status(fake, ctx):
    repo = repo_of(fake, ctx)
    sha, items = _statuses(repo, ctx.params["ref"])
    latest = {}
    for s in items:
        latest.setdefault(s.context, s)
    states = {s.state for s in latest.values()}
    state = (
        "failure" if states & {"failure", "error"} else ("pending" if "pending" in states or not states else "success")
    )
    return ok(
        {
            "state": state,
            "sha": sha,
            "total_count": len(latest),
            "statuses": [
                {
                    "url": f"{fake.api_url}/repos/{repo.full_name}/statuses/{sha}",
                    "avatar_url": fake.user_json(s.creator)["avatar_url"],
                    "id": s.id,
                    "node_id": O.node_id("StatusContext", s.id),
                    "state": s.state,
                    "description": s.description,
                    "target_url": s.target_url,
                    "context": s.context,
                    "created_at": O.iso(s.created_at),
                    "updated_at": O.iso(s.created_at),
                }
                for s in latest.values()
            ],
            "repository": O.repository(fake.urls, repo, fake.user_json(repo.owner)),
            "commit_url": f"{fake.api_url}/repos/{repo.full_name}/commits/{sha}",
            "url": f"{fake.api_url}/repos/{repo.full_name}/commits/{sha}/status",
        }
    )


# -- git data --------------------------------------------------------------------------------------
@op("git/get-ref")
def get_ref(fake, ctx):
    repo = repo_of(fake, ctx)
    name = "refs/" + ctx.params["ref"]
    if name not in repo.refs:
        raise HttpError(404, "Not Found")
    return ok(O.git_ref(fake.urls, repo, name, repo.refs[name]))


@op("git/list-matching-refs")
def matching_refs(fake, ctx):
    repo = repo_of(fake, ctx)
    prefix = "refs/" + ctx.params["ref"]
    return ok([O.git_ref(fake.urls, repo, n, s) for n, s in sorted(repo.refs.items()) if n.startswith(prefix)])


@op("git/create-ref")
def create_ref(fake, ctx):
    repo = repo_of(fake, ctx)
    name, sha = ctx.body["ref"], ctx.body["sha"]
    if not name.startswith("refs/") or name.count("/") < 2:
        raise HttpError(422, "Reference name must start with 'refs/' and have at least two slashes.")
    if name in repo.refs:
        raise HttpError(422, "Reference already exists")
    if sha not in repo.git.commits:
        raise HttpError(422, "Object does not exist")
    repo.refs[name] = sha
    return ok(
        O.git_ref(fake.urls, repo, name, sha), 201, {"Location": f"{fake.api_url}/repos/{repo.full_name}/git/{name}"}
    )


@op("git/update-ref")
def update_ref(fake, ctx):
    repo = repo_of(fake, ctx)
    name = "refs/" + ctx.params["ref"]
    sha = ctx.body["sha"]
    if name not in repo.refs:
        raise HttpError(422, "Reference does not exist")
    if sha not in repo.git.commits:
        raise HttpError(422, "Object does not exist")
    if not ctx.body.get("force") and not _is_ancestor(repo, repo.refs[name], sha):
        raise HttpError(422, "Update is not a fast forward")
    repo.refs[name] = sha
    for pr in repo.pulls():
        if pr.state == "open" and f"refs/heads/{pr.head_ref}" == name:
            pr.head_sha, pr.updated_at = sha, time.time()
    return ok(O.git_ref(fake.urls, repo, name, sha))


def _is_ancestor(repo, old: str, new: str) -> bool:
    todo, seen = [new], set()
    while todo:
        sha = todo.pop()
        if sha == old:
            return True
        if sha in seen or sha not in repo.git.commits:
            continue
        seen.add(sha)
        todo.extend(repo.git.commits[sha].parents)
    return False


@op("git/delete-ref")
def delete_ref(fake, ctx):
    repo = repo_of(fake, ctx)
    name = "refs/" + ctx.params["ref"]
    if name not in repo.refs:
        raise HttpError(422, "Reference does not exist")
    del repo.refs[name]
    return ok(None, 204)


@op("git/create-blob")
def create_blob(fake, ctx):
    repo = repo_of(fake, ctx)
    content, encoding = ctx.body["content"], ctx.body.get("encoding", "utf-8")
    if encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except ValueError:
            raise invalid("Blob", "content") from None
    elif encoding in ("utf-8", "utf8"):
        data = content.encode()
    else:
        raise invalid("Blob", "encoding")
    sha = repo.git.blob(data)
    return ok(
        {"url": f"{fake.api_url}/repos/{repo.full_name}/git/blobs/{sha}", "sha": sha},
        201,
        {"Location": f"{fake.api_url}/repos/{repo.full_name}/git/blobs/{sha}"},
    )


@op("git/get-blob")
def get_blob(fake, ctx):
    repo = repo_of(fake, ctx)
    sha = ctx.params["file_sha"]
    if repo.git.objects.get(sha, ("",))[0] != "blob":
        raise HttpError(404, "Not Found")
    data = repo.git.objects[sha][1]
    return ok(
        {
            "sha": sha,
            "node_id": O.node_id("Blob", sha[:12]),
            "size": len(data),
            "url": f"{fake.api_url}/repos/{repo.full_name}/git/blobs/{sha}",
            "content": base64.encodebytes(data).decode(),
            "encoding": "base64",
        }
    )


@op("git/create-tree")
def create_tree(fake, ctx):
    repo = repo_of(fake, ctx)
    base = ctx.body.get("base_tree")
    if base is not None and base not in repo.git.trees:
        raise invalid("Tree", "base_tree")
    files = repo.git.flatten(base) if base else {}
    for i, entry in enumerate(ctx.body["tree"]):
        path, mode, kind = entry.get("path"), entry.get("mode"), entry.get("type")
        if (
            not path
            or mode not in ("100644", "100755", "040000", "160000", "120000")
            or kind not in ("blob", "tree", "commit")
        ):
            raise HttpError(422, f"tree.{i} is invalid")
        if "content" in entry:
            files[path] = (mode, repo.git.blob(entry["content"].encode()))
        elif entry.get("sha") is None:
            if path not in files and not any(p.startswith(path + "/") for p in files):
                raise HttpError(422, f"tree.path contains a malformed path component: {path}")
            files.pop(path, None)
            for p in [p for p in files if p.startswith(path + "/")]:
                del files[p]
        elif kind == "tree":
            if entry["sha"] not in repo.git.trees:
                raise HttpError(422, f"tree.sha {entry['sha']} is not a valid tree")
            for sub, (m, s) in repo.git.flatten(entry["sha"]).items():
                files[f"{path}/{sub}"] = (m, s)
        else:
            if repo.git.objects.get(entry["sha"], ("",))[0] != "blob":
                raise HttpError(422, f"tree.sha {entry['sha']} is not a valid blob")
            files[path] = (mode, entry["sha"])
    sha = repo.git.build(files)
    return ok(
        O.git_tree(fake.urls, repo, repo.git, sha, recursive=False),
        201,
        {"Location": f"{fake.api_url}/repos/{repo.full_name}/git/trees/{sha}"},
    )


@op("git/get-tree")
def get_tree(fake, ctx):
    repo = repo_of(fake, ctx)
    sha = ctx.params["tree_sha"]
    if sha not in repo.git.trees:
        if sha in repo.git.commits:
            sha = repo.git.commits[sha].tree
        else:
            raise HttpError(404, "Not Found")
    recursive = ctx.arg("recursive") not in (None, "", "0", "false")
    return ok(O.git_tree(fake.urls, repo, repo.git, sha, recursive))


@op("git/create-commit")
def create_commit(fake, ctx):
    repo = repo_of(fake, ctx)
    b = ctx.body
    if b["tree"] not in repo.git.trees:
        raise invalid("Commit", "tree")
    for p in b.get("parents", []):
        if p not in repo.git.commits:
            raise invalid("Commit", "parents")
    now = time.time()

    def person(given):
        if not given:
            return {"name": "aina-test[bot]", "email": "1+aina-test[bot]@users.noreply.github.com", "_epoch": now}
        when = given.get("date")
        epoch = calendar.timegm(time.strptime(when[:19], "%Y-%m-%dT%H:%M:%S")) if when else now
        return {"name": given["name"], "email": given["email"], "_epoch": epoch}

    author = person(b.get("author"))
    committer = person(b.get("committer")) if b.get("committer") else author
    sha = repo.git.commit(b["tree"], list(b.get("parents", [])), b["message"], author, committer)
    return ok(
        O.git_commit(fake.urls, repo, repo.git.commits[sha]),
        201,
        {"Location": f"{fake.api_url}/repos/{repo.full_name}/git/commits/{sha}"},
    )


@op("git/get-commit")
def get_commit(fake, ctx):
    repo = repo_of(fake, ctx)
    sha = ctx.params["commit_sha"]
    if sha not in repo.git.commits:
        raise HttpError(404, "Not Found")
    return ok(O.git_commit(fake.urls, repo, repo.git.commits[sha]))


# -- pull requests ------------------------------------------------------------------------------
@op("pulls/list")
def list_pulls(fake, ctx):
    repo = repo_of(fake, ctx)
    state = ctx.arg("state", "open")
    head = ctx.arg("head")
    base = ctx.arg("base")
    items = []
    for pr in sorted(repo.pulls(), key=lambda p: p.number, reverse=True):
        if state != "all" and pr.state != state:
            continue
        if head is not None:
            owner, _, branch = head.partition(":")
            if owner.lower() != repo.owner.lower() or pr.head_ref != branch:
                continue
        if base is not None and pr.base_ref != base:
            continue
        items.append(pull_json(fake, repo, pr, short=True))
    chunk, headers = paginate(fake, items, ctx)
    return ok(chunk, headers=headers)


@op("pulls/create")
def create_pull(fake, ctx):
    repo = repo_of(fake, ctx)
    b = ctx.body
    head, base = b.get("head"), b.get("base")
    head = head.split(":", 1)[1] if head and ":" in head else head
    if f"refs/heads/{base}" not in repo.refs:
        raise invalid("PullRequest", "base")
    if f"refs/heads/{head}" not in repo.refs:
        raise invalid("PullRequest", "head")
    for pr in repo.pulls():
        if pr.state == "open" and pr.head_ref == head and pr.base_ref == base:
            raise HttpError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner}:{head}.",
                    }
                ],
            )
    number = _next_number(repo)
    pr = Issue(
        fake.ids.next("issue"),
        number,
        b.get("title") or head,
        b.get("body"),
        actor(ctx),
        is_pull=True,
        head_ref=head,
        head_sha=repo.refs[f"refs/heads/{head}"],
        base_ref=base,
        base_sha=repo.refs[f"refs/heads/{base}"],
    )
    repo.issues[number] = pr
    return ok(pull_json(fake, repo, pr), 201, {"Location": f"{fake.api_url}/repos/{repo.full_name}/pulls/{number}"})


def _next_number(repo) -> int:
    return max(repo.issues, default=0) + 1


def _pull(repo, ctx) -> Issue:
    pr = repo.issues.get(int(ctx.params["pull_number"]))
    if pr is None or not pr.is_pull:
        raise HttpError(404, "Not Found")
    return pr


@op("pulls/get")
def get_pull(fake, ctx):
    repo = repo_of(fake, ctx)
    return ok(pull_json(fake, repo, _pull(repo, ctx)))


@op("pulls/update")
def update_pull(fake, ctx):
    repo = repo_of(fake, ctx)
    pr = _pull(repo, ctx)
    b = ctx.body or {}
    if "title" in b:
        pr.title = b["title"]
    if "body" in b:
        pr.body = b["body"]
    if b.get("state") == "closed" and pr.state == "open":
        pr.state, pr.closed_at = "closed", time.time()
    elif b.get("state") == "open" and pr.state == "closed" and pr.merged_at is None:
        pr.state, pr.closed_at = "open", None
    pr.updated_at = time.time()
    return ok(pull_json(fake, repo, pr))


# -- issues, labels, comments ------------------------------------------------------------------
def _issue(repo, ctx) -> Issue:
    iss = repo.issues.get(int(ctx.params["issue_number"]))
    if iss is None:
        raise HttpError(404, "Not Found")
    return iss


def _ensure_labels(fake, repo, names) -> list[str]:
    out = []
    for name in names:
        name = name if isinstance(name, str) else name.get("name")
        if name.lower() not in repo.labels:
            repo.labels[name.lower()] = Label(fake.ids.next("label"), name, "ededed")
        canonical = repo.labels[name.lower()].name
        if canonical not in out:
            out.append(canonical)
    return out


@op("issues/create")
def create_issue(fake, ctx):
    repo = repo_of(fake, ctx)
    b = ctx.body
    number = _next_number(repo)
    iss = Issue(fake.ids.next("issue"), number, str(b["title"]), b.get("body"), actor(ctx))
    iss.labels = _ensure_labels(fake, repo, b.get("labels") or [])
    repo.issues[number] = iss
    return ok(issue_json(fake, repo, iss), 201, {"Location": f"{fake.api_url}/repos/{repo.full_name}/issues/{number}"})


@op("issues/list-for-repo")
def list_issues(fake, ctx):
    repo = repo_of(fake, ctx)
    state = ctx.arg("state", "open")
    wanted = [x.lower() for x in (ctx.arg("labels") or "").split(",") if x]
    creator = ctx.arg("creator")
    items = []
    for iss in sorted(repo.issues.values(), key=lambda i: i.number, reverse=True):
        if state != "all" and iss.state != state:
            continue
        if wanted and not set(wanted) <= {n.lower() for n in iss.labels}:
            continue
        if creator and iss.user != creator:
            continue
        items.append(issue_json(fake, repo, iss))
    chunk, headers = paginate(fake, items, ctx)
    return ok(chunk, headers=headers)


@op("issues/get")
def get_issue(fake, ctx):
    repo = repo_of(fake, ctx)
    return ok(issue_json(fake, repo, _issue(repo, ctx)))


@op("issues/update")
def update_issue(fake, ctx):
    repo = repo_of(fake, ctx)
    iss = _issue(repo, ctx)
    b = ctx.body or {}
    if "title" in b and b["title"] is not None:
        iss.title = str(b["title"])
    if "body" in b:
        iss.body = b["body"]
    if b.get("state") in ("open", "closed") and b["state"] != iss.state:
        iss.state = b["state"]
        iss.closed_at = time.time() if iss.state == "closed" else None
    if "labels" in b and b["labels"] is not None:
        iss.labels = _ensure_labels(fake, repo, b["labels"])
    iss.updated_at = time.time()
    return ok(issue_json(fake, repo, iss))


def _label_names(body) -> list:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        return body.get("labels") or []
    return []


@op("issues/add-labels")
def add_labels(fake, ctx):
    repo = repo_of(fake, ctx)
    iss = _issue(repo, ctx)
    for name in _ensure_labels(fake, repo, _label_names(ctx.body)):
        if name not in iss.labels:
            iss.labels.append(name)
    return ok(labels_json(fake, repo, iss.labels))


@op("issues/set-labels")
def set_labels(fake, ctx):
    repo = repo_of(fake, ctx)
    iss = _issue(repo, ctx)
    iss.labels = _ensure_labels(fake, repo, _label_names(ctx.body))
    return ok(labels_json(fake, repo, iss.labels))


@op("issues/list-labels-on-issue")
def issue_labels(fake, ctx):
    repo = repo_of(fake, ctx)
    return ok(labels_json(fake, repo, _issue(repo, ctx).labels))


@op("issues/list-comments")
def list_comments(fake, ctx):
    repo = repo_of(fake, ctx)
    iss = _issue(repo, ctx)
    items = [comment_json(fake, repo, repo.comments[c]) for c in iss.comments]
    chunk, headers = paginate(fake, items, ctx)
    return ok(chunk, headers=headers)


@op("issues/create-comment")
def create_comment(fake, ctx):
    repo = repo_of(fake, ctx)
    iss = _issue(repo, ctx)
    c = add_comment(fake, repo, iss.number, ctx.body["body"], actor(ctx))
    return ok(
        comment_json(fake, repo, c), 201, {"Location": f"{fake.api_url}/repos/{repo.full_name}/issues/comments/{c.id}"}
    )


def _colour(value) -> str:
    if (
        not isinstance(value, str)
        or len(value.lstrip("#")) != 6
        or any(ch not in "0123456789abcdefABCDEF" for ch in value.lstrip("#"))
    ):
        raise invalid("Label", "color")
    return value.lstrip("#").lower()


@op("issues/list-labels-for-repo")
def list_labels(fake, ctx):
    repo = repo_of(fake, ctx)
    items = [O.label(fake.urls, repo, lab) for lab in repo.labels.values()]
    chunk, headers = paginate(fake, items, ctx)
    return ok(chunk, headers=headers)


@op("issues/create-label")
def create_label(fake, ctx):
    repo = repo_of(fake, ctx)
    name = ctx.body["name"]
    colour = _colour(ctx.body.get("color", "ededed"))
    if name.lower() in repo.labels:
        raise invalid("Label", "name", "already_exists")
    # "" rather than null: GitHub's description of a pull request's labels (pulls/list) says
    # string, not nullable, and the fake checks its own answers against that description
    lab = Label(fake.ids.next("label"), name, colour, ctx.body.get("description") or "")
    repo.labels[name.lower()] = lab
    return ok(O.label(fake.urls, repo, lab), 201, {"Location": f"{fake.api_url}/repos/{repo.full_name}/labels/{name}"})


def _label(repo, ctx) -> Label:
    lab = repo.labels.get(ctx.params["name"].lower())
    if lab is None:
        raise HttpError(404, "Not Found")
    return lab


@op("issues/get-label")
def get_label(fake, ctx):
    repo = repo_of(fake, ctx)
    return ok(O.label(fake.urls, repo, _label(repo, ctx)))


@op("issues/update-label")
def update_label(fake, ctx):
    repo = repo_of(fake, ctx)
    lab = _label(repo, ctx)
    b = ctx.body or {}
    if "color" in b:
        lab.color = _colour(b["color"])
    if "description" in b:
        lab.description = b["description"]
    if b.get("new_name"):
        del repo.labels[lab.name.lower()]
        for iss in repo.issues.values():
            iss.labels = [b["new_name"] if n == lab.name else n for n in iss.labels]
        lab.name = b["new_name"]
        repo.labels[lab.name.lower()] = lab
    return ok(O.label(fake.urls, repo, lab))


@op("issues/delete-label")
def delete_label(fake, ctx):
    repo = repo_of(fake, ctx)
    lab = _label(repo, ctx)
    del repo.labels[lab.name.lower()]
    for iss in repo.issues.values():
        iss.labels = [n for n in iss.labels if n != lab.name]
    return ok(None, 204)


# -- checks ---------------------------------------------------------------------------------------
@op("checks/create")
def create_check_run(fake, ctx):
    repo = repo_of(fake, ctx)
    b = ctx.body
    if b["head_sha"] not in repo.git.commits:
        raise HttpError(422, "No commit found for SHA: " + b["head_sha"])
    status = b.get("status", "queued")
    if b.get("conclusion") and status != "completed":
        status = "completed"
    if status == "completed" and not b.get("conclusion"):
        raise invalid("CheckRun", "conclusion", "missing")

    def when(text):
        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) if text else None

    run = CheckRun(
        fake.ids.next("check_run"),
        b["name"],
        b["head_sha"],
        status,
        b.get("conclusion"),
        b.get("external_id"),
        b.get("output") or {},
        fake.ids.next("suite"),
        when(b.get("started_at")) or time.time(),
        when(b.get("completed_at")),
    )
    repo.check_runs.append(run)
    return ok(O.check_run(fake.urls, repo, run, app_json(fake)), 201)


@op("checks/list-for-ref")
def list_check_runs(fake, ctx):
    repo = repo_of(fake, ctx)
    sha = resolve_commit(repo, ctx.params["ref"])
    runs = [O.check_run(fake.urls, repo, r, app_json(fake)) for r in repo.check_runs if r.head_sha == sha]
    return ok({"total_count": len(runs), "check_runs": runs})


# -- merging: the merge button, reviewers, Actions artifacts ---------------------------------------
@op("pulls/merge")
def merge_pull(fake, ctx):
    """GitHub's refusals: 405 when the PR cannot be merged (closed, a conflict: ``mergeable``
    false), 409 when ``sha`` is given and is not the PR's head any more."""
    repo = repo_of(fake, ctx)
    pr = _pull(repo, ctx)
    b = ctx.body or {}
    if pr.state != "open" or not pr.mergeable:
        raise HttpError(405, "Pull Request is not mergeable")
    if b.get("sha") and b["sha"] != pr.head_sha:
        raise HttpError(409, "Head branch was modified. Review and try the merge again.")
    sha = fake.merge_pull(repo, pr.number, actor(ctx), method=b.get("merge_method") or "merge")
    return ok({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})


@op("pulls/request-reviewers")
def request_reviewers(fake, ctx):
    repo = repo_of(fake, ctx)
    pr = _pull(repo, ctx)
    b = ctx.body or {}
    logins, teams = b.get("reviewers") or [], b.get("team_reviewers") or []
    for login in logins:
        if login not in repo.collaborators:
            raise HttpError(
                422,
                "Reviews may only be requested from collaborators. One or more of the users or teams you "
                "specified is not a collaborator of the " + repo.full_name + " repository.",
            )
    pr.requested_reviewers += [x for x in logins if x not in pr.requested_reviewers]
    pr.requested_teams += [x for x in teams if x not in pr.requested_teams]
    return ok(pull_json(fake, repo, pr), 201)


@op("actions/list-artifacts-for-repo")
def list_artifacts(fake, ctx):
    repo = repo_of(fake, ctx)
    name = ctx.arg("name")
    items = [
        O.artifact(fake.urls, repo, a)
        for a in sorted(repo.artifacts, key=lambda a: a.id, reverse=True)
        if name is None or a.name == name
    ]
    chunk, headers = paginate(fake, items, ctx)
    return ok({"total_count": len(items), "artifacts": chunk}, headers=headers)


@op("actions/download-artifact")
def download_artifact(fake, ctx):
    repo = repo_of(fake, ctx)
    art = next((a for a in repo.artifacts if str(a.id) == ctx.params["artifact_id"]), None)
    if art is None:
        raise HttpError(404, "Not Found")
    if art.expired:
        raise HttpError(410, "Artifact has expired")
    return ok(None, 302, {"Location": f"{fake.root}/_artifacts/{repo.owner}/{repo.name}/{art.id}"})
