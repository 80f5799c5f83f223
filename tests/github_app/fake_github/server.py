"""A stateful GitHub (Enterprise) REST API on loopback, for tests.

Every request is routed by GitHub's published description (:mod:`.openapi`): a path GitHub
does not have is a 404 *and* a recorded violation; a request whose parameters or body do
not fit is recorded too; every answer (but deliberate faults) is checked against the
description before it leaves. Tests assert ``fake.violations == []``.

Authentication is GitHub's: ``/app`` endpoints want the App's JWT (RS256, checked with the
App's public key, ``iss`` = App id, at most ten minutes long); repository endpoints want an
installation token (``ghs_...``) whose installation covers the repository.

Faults: :meth:`FakeGitHub.inject` answers matching requests with a 5xx or a rate limit
(``Retry-After``, ``X-RateLimit-Remaining: 0``); :meth:`FakeGitHub.hold` lets a request do
its work and then holds its answer until released (to kill a client mid-request).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jwt
import requests
from flask import Flask, Response, request
from werkzeug.serving import make_server

from . import objects as O
from .handlers import HANDLERS, HttpError
from .openapi import RestDescription
from .state import AppState, Artifact, CheckRun, Delivery, Ids, Installation, Repo

API_PREFIX = "/api/v3"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int


@dataclass
class Hold:
    method: str
    pattern: re.Pattern[str]
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class RequestRecord:
    method: str
    path: str
    operation_id: str | None
    status: int
    body: Any


class FakeGitHub:
    def __init__(
        self,
        description: RestDescription,
        *,
        app_id: int,
        public_key: str,
        webhook_secret: str,
        slug: str = "aina-test",
        token_lifetime: float = 3600.0,
    ):
        self.description = description
        self.lock = threading.RLock()
        self.ids = Ids()
        self.app = AppState(
            id=app_id, slug=slug, name="aina (test)", public_key=public_key, webhook_secret=webhook_secret
        )
        self.users: dict[str, tuple[int, str]] = {}
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, tuple[int, float]] = {}
        self.token_lifetime = token_lifetime
        self.deliveries: list[Delivery] = []
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.requests: list[RequestRecord] = []
        self.violations: list[str] = []
        self.jwts_seen: list[dict[str, Any]] = []
        self.bot_login = f"{slug}[bot]"
        self.add_user(self.bot_login, kind="Bot")
        self._server = None
        self._thread = None
        self.web = Flask("fake-github")
        self.web.add_url_rule("/<path:path>", "api", self._dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        self.web.add_url_rule("/_codeload/<owner>/<name>/<sha>", "codeload", self._codeload)
        self.web.add_url_rule("/_artifacts/<owner>/<name>/<int:ident>", "artifact", self._artifact)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        self._server = make_server("127.0.0.1", 0, self.web, threaded=True)
        self.port = self._server.server_port
        self.root = f"http://127.0.0.1:{self.port}"
        self.api_url = self.root + API_PREFIX
        self.urls = O.Urls(self.api_url, self.root)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name="fake-github"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        for h in self.holds:
            h.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    # -- set-up -------------------------------------------------------------------------------
    def add_user(self, login: str, kind: str = "User") -> int:
        with self.lock:
            if login not in self.users:
                self.users[login] = (self.ids.next("user"), kind)
            return self.users[login][0]

    def user_json(self, login: str) -> dict[str, Any]:
        ident, kind = self.users.get(login) or (self.add_user(login), "User")
        return O.user(self.urls, login, ident, kind)

    def create_repo(self, full_name: str, files: dict[str, str], *, default_branch: str = "main") -> Repo:
        owner, name = full_name.split("/")
        with self.lock:
            self.add_user(owner)
            repo = Repo(id=self.ids.next("repo"), owner=owner, name=name, default_branch=default_branch)
            self.repos[full_name.lower()] = repo
            repo.collaborators[owner] = "admin"
        self.push(repo, files, "Initial commit", branch=default_branch, deliver=False)
        return repo

    def install(self, account: str, repos: list[str]) -> Installation:
        with self.lock:
            inst = Installation(
                id=self.ids.next("installation"), account=account, repositories={r.lower() for r in repos}
            )
            self.app.installations[inst.id] = inst
            return inst

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def push(
        self,
        repo: Repo,
        files: dict[str, str | None],
        message: str,
        *,
        branch: str | None = None,
        author: str = "octocat",
        deliver: bool = True,
    ) -> str:
        """Commit ``files`` on ``branch`` (as a person would push), and send the push event."""
        branch = branch or repo.default_branch
        with self.lock:
            ref = f"refs/heads/{branch}"
            before = repo.refs.get(ref)
            current = repo.git.flatten(repo.git.commits[before].tree) if before else {}
            for path, content in files.items():
                if content is None:
                    current.pop(path, None)
                else:
                    current[path] = ("100644", repo.git.blob(content.encode()))
            tree = repo.git.build(current)
            who = {"name": author, "email": f"{author}@example.com", "_epoch": time.time()}
            sha = repo.git.commit(tree, [before] if before else [], message, who, who)
            repo.refs[ref] = sha
            repo.pushed_at = time.time()
            for pr in repo.pulls():  # an open PR's head follows its branch
                if pr.state == "open" and pr.head_ref == branch:
                    pr.head_sha, pr.updated_at = sha, time.time()
        if deliver:
            self.deliver_event("push", self.push_payload(repo, ref, before, sha, author), repo)
        return sha

    # -- faults ---------------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        pattern: str,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        with self.lock:
            self.faults.append(
                Fault(
                    method.upper(),
                    re.compile(pattern),
                    status,
                    headers or {},
                    body or {"message": "Server Error"},
                    times,
                )
            )

    def hold(self, method: str, pattern: str) -> Hold:
        h = Hold(method.upper(), re.compile(pattern))
        with self.lock:
            self.holds.append(h)
        return h

    def count(self, method: str, operation_id: str, status: int | None = None) -> int:
        return sum(
            1
            for r in list(self.requests)
            if r.method == method.upper() and r.operation_id == operation_id and (status is None or r.status == status)
        )

    # -- the API --------------------------------------------------------------------------------
    def _dispatch(self, path: str) -> Response:
        method = request.method
        full = "/" + path
        if not full.startswith(API_PREFIX + "/"):
            return self._answer(None, 404, {"message": "Not Found"}, {})
        api_path = full[len(API_PREFIX) :]
        match = self.description.match(method, api_path)
        if match is None:
            self.violations.append(f"{method} {api_path}: GitHub's API has no such operation")
            return self._answer(
                None, 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, {}
            )
        op, params = match
        raw = request.get_data()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self.violations.append(f"{method} {api_path}: body is not JSON")
                return self._answer(op, 400, {"message": "Problems parsing JSON"}, {})
        query = {k: request.args.getlist(k) for k in request.args}
        problems = self.description.check_request(op, params, query, body, bool(raw))
        if problems:
            self.violations.extend(problems)
            return self._answer(
                op,
                422,
                {"message": "Invalid request.\n\n" + problems[0], "documentation_url": "https://docs.github.com/rest"},
                {},
                validate=False,
            )

        fault = self._fault(method, api_path)
        if fault is not None:
            return self._answer(op, fault.status, fault.body, fault.headers, validate=False)

        try:
            auth = self._authenticate(op.template)
            handler = HANDLERS.get(op.operation_id)
            if handler is None:
                self.violations.append(f"the fake does not implement {op.operation_id}")
                raise HttpError(501, f"fake: {op.operation_id} not implemented")
            with self.lock:
                status, out, headers = handler(self, _Ctx(params, query, body, auth))
        except HttpError as err:
            status, out, headers = err.status, err.body(), err.headers

        for h in list(self.holds):
            if h.method == method and h.pattern.search(api_path):
                self.holds.remove(h)
                h.reached.set()
                h.released.wait(60)
        return self._answer(op, status, out, headers)

    def _answer(self, op, status: int, body: Any, headers: dict[str, str], *, validate: bool = True) -> Response:
        if validate and op is not None and status != 401:
            self.violations.extend(self.description.check_response(op, status, body, "application/json"))
        self.requests.append(RequestRecord(request.method, request.path, op.operation_id if op else None, status, body))
        base = {
            "X-GitHub-Request-Id": uuid.uuid4().hex[:16].upper(),
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
        }
        base.update(headers)
        if status in (204, 302) or body is None:
            return Response(status=status, headers=base)
        return Response(json.dumps(body), status=status, headers=base, content_type="application/json; charset=utf-8")

    def _fault(self, method: str, api_path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.method == method and f.pattern.search(api_path):
                    f.times -= 1
                    return f
        return None

    def _authenticate(self, template: str) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if template.startswith("/app"):
            if scheme.lower() != "bearer" or credential.startswith("ghs_"):
                raise HttpError(401, "A JSON web token could not be decoded")
            return {"app": self._check_jwt(credential)}
        if scheme.lower() not in ("token", "bearer") or credential not in self.tokens:
            raise HttpError(401, "Bad credentials")
        inst_id, expires = self.tokens[credential]
        if expires <= time.time():
            raise HttpError(401, "Bad credentials")
        inst = self.app.installations.get(inst_id)
        if inst is None or inst.suspended_at is not None:
            raise HttpError(401, "Bad credentials")
        return {"installation": inst}

    def _check_jwt(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self.app.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_iss": False},
                leeway=0,
            )
        except jwt.PyJWTError as exc:
            raise HttpError(401, f"A JSON web token could not be decoded: {exc}") from None
        self.jwts_seen.append(claims)
        if str(claims["iss"]) != str(self.app.id):
            raise HttpError(401, "'Issuer' claim ('iss') must be the App's id")
        if claims["exp"] - claims["iat"] > 600:
            raise HttpError(401, "'Expiration time' claim ('exp') is too far in the future")
        if claims["iat"] > time.time() + 30:
            raise HttpError(
                401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
            )
        return claims

    def _codeload(self, owner: str, name: str, sha: str) -> Response:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None or sha not in repo.git.commits:
            return Response(status=404)
        data = repo.git.tarball(sha, f"{owner}-{name}-{sha[:7]}")
        return Response(data, content_type="application/x-gzip")

    def _artifact(self, owner: str, name: str, ident: int) -> Response:
        repo = self.repos.get(f"{owner}/{name}".lower())
        art = next((a for a in repo.artifacts if a.id == ident), None) if repo else None
        if art is None:
            return Response(status=404)
        return Response(art.data, content_type="application/zip")

    # -- webhooks out -----------------------------------------------------------------------------
    def deliver_event(
        self,
        event: str,
        payload: dict[str, Any],
        repo: Repo | None = None,
        guid: str | None = None,
        redelivery: bool = False,
    ) -> Delivery:
        """Send ``event`` to the App's webhook URL as GitHub would, and record the delivery
        (a failed one too: that is what the App's redelivery finds)."""
        inst = payload.get("installation", {}).get("id")
        body = json.dumps(payload).encode()
        guid = guid or str(uuid.uuid4())
        headers = {
            "User-Agent": "GitHub-Hookshot/fake",
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": "1",
            "X-GitHub-Hook-Installation-Target-ID": str(self.app.id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-Hub-Signature-256": "sha256="
            + hmac.new(self.app.webhook_secret.encode(), body, hashlib.sha256).hexdigest(),
        }
        with self.lock:
            d = Delivery(
                id=self.ids.next("delivery"),
                guid=guid,
                event=event,
                action=payload.get("action"),
                installation_id=inst,
                repository_id=repo.id if repo else None,
                payload=payload,
                headers=headers,
                url=self.app.webhook_url or "",
                redelivery=redelivery,
                delivered_at=time.time(),
            )
            self.deliveries.append(d)
        started = time.monotonic()
        if not self.app.webhook_url:
            d.status, d.status_code = "No webhook URL configured", 0
            return d
        try:
            r = requests.post(self.app.webhook_url, data=body, headers=headers, timeout=10)
            d.status_code = r.status_code
            d.status = "OK" if 200 <= r.status_code < 300 else f"Invalid HTTP Response: {r.status_code}"
            d.response_body = r.text[:1000]
        except requests.RequestException:
            d.status, d.status_code = "failed to connect to host", 0
        d.duration = round(time.monotonic() - started, 3)
        return d

    def redeliver(self, delivery: Delivery) -> None:
        threading.Thread(
            target=self.deliver_event,
            daemon=True,
            kwargs=dict(
                event=delivery.event,
                payload=delivery.payload,
                repo=next((r for r in self.repos.values() if r.id == delivery.repository_id), None),
                guid=delivery.guid,
                redelivery=True,
            ),
        ).start()

    # -- event payloads (as GitHub builds them) ------------------------------------------------
    def _envelope(self, repo: Repo | None, sender: str) -> dict[str, Any]:
        out: dict[str, Any] = {"sender": self.user_json(sender)}
        if repo is not None:
            out["repository"] = O.repository(self.urls, repo, self.user_json(repo.owner))
            inst = self.installation_for(repo)
            if inst is not None:
                out["installation"] = {"id": inst.id, "node_id": O.node_id("Installation", inst.id)}
        return out

    def installation_for(self, repo: Repo) -> Installation | None:
        for inst in self.app.installations.values():
            if repo.full_name.lower() in inst.repositories:
                return inst
        return None

    def push_payload(self, repo: Repo, ref: str, before: str | None, after: str, pusher: str) -> dict[str, Any]:
        c = repo.git.commits[after]
        commit = {
            "id": after,
            "tree_id": c.tree,
            "distinct": True,
            "message": c.message,
            "timestamp": O.iso(c.committer["_epoch"]),
            "url": f"{self.root}/{repo.full_name}/commit/{after}",
            "author": {"name": pusher, "email": f"{pusher}@example.com", "username": pusher},
            "committer": {"name": pusher, "email": f"{pusher}@example.com", "username": pusher},
            "added": [],
            "removed": [],
            "modified": [],
        }
        payload = {
            "ref": ref,
            "before": before or "0" * 40,
            "after": after,
            "created": before is None,
            "deleted": False,
            "forced": False,
            "base_ref": None,
            "compare": f"{self.root}/{repo.full_name}/compare/{(before or '0')[:12]}...{after[:12]}",
            "commits": [commit],
            "head_commit": commit,
            "pusher": {"name": pusher, "email": f"{pusher}@example.com"},
        }
        payload.update(self._envelope(repo, pusher))
        return payload

    def installation_payload(self, inst: Installation, action: str) -> dict[str, Any]:
        account = self.user_json(inst.account)
        repos = []
        for name in sorted(inst.repositories):
            r = self.repos[name]
            repos.append(
                {
                    "id": r.id,
                    "node_id": O.node_id("Repository", r.id),
                    "name": r.name,
                    "full_name": r.full_name,
                    "private": False,
                }
            )
        return {
            "action": action,
            "installation": O.installation(self.urls, self.app, inst, account),
            "repositories": repos,
            "requester": None,
            "sender": account,
        }

    def pull_payload(self, repo: Repo, number: int, action: str, sender: str) -> dict[str, Any]:
        from .handlers import pull_json

        payload = {"action": action, "number": number, "pull_request": pull_json(self, repo, repo.issues[number])}
        payload.update(self._envelope(repo, sender))
        return payload

    # -- people doing things ----------------------------------------------------------------------
    def merge_pull(self, repo: Repo, number: int, by: str, method: str = "merge") -> str:
        """Merge a PR as a maintainer would: a commit of its head's tree onto the base (a
        merge commit, or one parent for ``squash``/``rebase``)."""
        with self.lock:
            pr = repo.issues[number]
            base_ref = f"refs/heads/{pr.base_ref}"
            before = repo.refs[base_ref]
            head = repo.git.commits[pr.head_sha]
            who = {"name": by, "email": f"{by}@example.com", "_epoch": time.time()}
            parents = [before, pr.head_sha] if method == "merge" else [before]
            sha = repo.git.commit(head.tree, parents, f"Merge pull request #{number}", who, who)
            repo.refs[base_ref] = sha
            pr.state, pr.merged_at, pr.closed_at, pr.merge_sha = "closed", time.time(), time.time(), sha
            pr.merged_by_json = self.user_json(by)
        self.deliver_event("pull_request", self.pull_payload(repo, number, "closed", by), repo)
        self.deliver_event("push", self.push_payload(repo, base_ref, before, sha, by), repo)
        return sha

    def close_pull_as(self, repo: Repo, number: int, by: str) -> None:
        with self.lock:
            pr = repo.issues[number]
            pr.state, pr.closed_at = "closed", time.time()
        self.deliver_event("pull_request", self.pull_payload(repo, number, "closed", by), repo)

    def comment_as(self, repo: Repo, number: int, login: str, body: str) -> int:
        from .handlers import add_comment, comment_json, issue_json

        with self.lock:
            c = add_comment(self, repo, number, body, login)
            payload = {
                "action": "created",
                "issue": issue_json(self, repo, repo.issues[number]),
                "comment": comment_json(self, repo, c),
            }
        payload.update(self._envelope(repo, login))
        self.deliver_event("issue_comment", payload, repo)
        return c.id

    def edit_issue_as(self, repo: Repo, number: int, login: str, body: str) -> None:
        from .handlers import issue_json

        with self.lock:
            iss = repo.issues[number]
            old = iss.body
            iss.body, iss.updated_at = body, time.time()
            payload = {
                "action": "edited",
                "issue": issue_json(self, repo, iss),
                "changes": {"body": {"from": old or ""}},
            }
        payload.update(self._envelope(repo, login))
        self.deliver_event("issues", payload, repo)

    def complete_gate(
        self, repo: Repo, head_sha: str, verdict: dict[str, Any] | None, conclusion: str = "success"
    ) -> int:
        """What the ``aina`` workflow's ``gate`` job leaves when it ends, as GitHub Actions
        leaves it: the artifact ``aina-gate-<head>`` holding ``aina-gate.json`` (unless
        ``verdict`` is None), a completed check run ``gate`` made by the ``github-actions``
        App, and the ``check_run`` ``completed`` event. The check run's id."""
        import io
        import zipfile

        with self.lock:
            run_id = self.ids.next("workflow_run")
            if verdict is not None:
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as z:
                    z.writestr("aina-gate.json", json.dumps(verdict, indent=2))
                    z.writestr("aina-gate.intoto.json", "{}")
                repo.artifacts.append(
                    Artifact(self.ids.next("artifact"), f"aina-gate-{head_sha}", buf.getvalue(), head_sha, run_id)
                )
            actions = {
                **O.integration(self.urls, self.app, self.user_json("github")),
                "id": 15368,
                "slug": "github-actions",
                "node_id": O.node_id("Integration", 15368),
                "client_id": "Iv1.github-actions",
                "name": "GitHub Actions",
            }
            now = time.time()
            run = CheckRun(
                self.ids.next("check_run"),
                "gate",
                head_sha,
                "completed",
                conclusion,
                None,
                {"title": None, "summary": None, "text": None},
                self.ids.next("suite"),
                now,
                now,
                app=actions,
            )
            repo.check_runs.append(run)
            payload = {"action": "completed", "check_run": O.check_run(self.urls, repo, run, actions)}
        payload.update(self._envelope(repo, "github-actions[bot]"))
        self.deliver_event("check_run", payload, repo)
        return run.id

    def rerequest_check_suite(self, repo: Repo, head_sha: str, login: str) -> None:
        payload = {
            "action": "rerequested",
            "check_suite": {
                "id": self.ids.next("suite"),
                "node_id": "x",
                "head_branch": None,
                "head_sha": head_sha,
                "status": "completed",
                "conclusion": "success",
                "url": f"{self.api_url}/repos/{repo.full_name}/check-suites/1",
                "before": None,
                "after": head_sha,
                "pull_requests": [],
                "app": None,
                "created_at": O.iso(time.time()),
                "updated_at": O.iso(time.time()),
                "latest_check_runs_count": 1,
                "check_runs_url": f"{self.api_url}/repos/{repo.full_name}/check-suites/1/check-runs",
                "head_commit": {
                    "id": head_sha,
                    "tree_id": head_sha,
                    "message": "",
                    "timestamp": O.iso(time.time()),
                    "author": {"name": "x", "email": "x@example.com"},
                    "committer": {"name": "x", "email": "x@example.com"},
                },
            },
        }
        payload.update(self._envelope(repo, login))
        self.deliver_event("check_suite", payload, repo)


@dataclass
class _Ctx:
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any
    auth: dict[str, Any]

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


__all__ = ["FakeGitHub", "Hold", "quote"]
