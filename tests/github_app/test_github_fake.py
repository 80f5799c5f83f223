"""The GitHub fake itself: real git object ids, GitHub's recorded answers' shapes, and a
validator that does refuse what GitHub would refuse."""

from __future__ import annotations

import json
import subprocess
import time

import octokit
import pytest
import requests
from fake_github.git import GitObjects
from fake_github.objects import Urls, user

ZERO1 = "0" * 39 + "1"
ZERO2 = "0" * 39 + "2"


def git(cwd, *args, env=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env=env).stdout.strip()


def test_git_objects_have_the_ids_git_gives_them(tmp_path):
    files = {
        "README.md": "hello\n",
        "kernels/softmax.py": "x = 1\n",
        "kernels/sub/deep.txt": "deep\n",
        "kernels-extra.txt": "sorts after kernels/\n",
    }
    when = 1_700_000_000
    env = {
        "GIT_AUTHOR_NAME": "A",
        "GIT_AUTHOR_EMAIL": "a@example.com",
        "GIT_AUTHOR_DATE": f"{when} +0000",
        "GIT_COMMITTER_NAME": "A",
        "GIT_COMMITTER_EMAIL": "a@example.com",
        "GIT_COMMITTER_DATE": f"{when} +0000",
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    git(tmp_path, "init", "-q", "-b", "main", env=env)
    for path, content in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(content)
    git(tmp_path, "add", ".", env=env)
    git(tmp_path, "commit", "-q", "-m", "first", env=env)

    objects = GitObjects()
    tree = objects.build({p: ("100644", objects.blob(c.encode())) for p, c in files.items()})
    who = {"name": "A", "email": "a@example.com", "_epoch": when}
    commit = objects.commit(tree, [], "first\n", who, who)
    assert tree == git(tmp_path, "rev-parse", "HEAD^{tree}", env=env)
    assert commit == git(tmp_path, "rev-parse", "HEAD", env=env)
    assert objects.flatten(tree)["kernels/sub/deep.txt"][1] == git(
        tmp_path, "rev-parse", "HEAD:kernels/sub/deep.txt", env=env
    )


def test_requests_outside_githubs_api_are_violations(fake):
    r = requests.get(fake.api_url + "/repos/o/r/not-an-endpoint", timeout=10)
    assert r.status_code == 404
    assert fake.violations == ["GET /repos/o/r/not-an-endpoint: GitHub's API has no such operation"]
    fake.violations.clear()


def test_bodies_that_do_not_fit_githubs_api_are_refused_and_recorded(fake, installed):
    repo, inst = installed
    token = _token(fake, inst)
    r = requests.post(
        f"{fake.api_url}/repos/{repo.full_name}/git/refs",
        timeout=10,
        json={"ref": 12},
        headers={"Authorization": f"token {token}"},
    )
    assert r.status_code == 422
    assert any("'sha' is a required property" in v for v in fake.violations)
    assert any("12 is not of type 'string'" in v for v in fake.violations)
    fake.violations.clear()


def test_the_response_check_catches_a_missing_field(rest_description):
    op, _ = rest_description.match("get", "/repos/o/r/labels/bug")
    label = {"id": 1, "node_id": "x", "url": "https://x", "name": "bug", "color": "fff", "description": None}
    problems = rest_description.check_response(op, 200, label, "application/json")
    assert problems and "'default' is a required property" in problems[0]
    assert rest_description.check_response(op, 200, {**label, "default": False}, "application/json") == []
    assert "declares no 418" in rest_description.check_response(op, 418, {}, "x")[0]


def test_users_fit_the_published_schema(rest_description):
    u = user(Urls("http://h/api/v3", "http://h"), "octocat", 1)
    assert list(rest_description.validator("#/components/schemas/simple-user").iter_errors(u)) == []


def test_app_endpoints_want_the_apps_jwt(fake):
    assert requests.get(fake.api_url + "/app", timeout=10).status_code == 401
    r = requests.get(fake.api_url + "/app", timeout=10, headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401 and "could not be decoded" in r.json()["message"]


def test_a_jwt_valid_for_more_than_ten_minutes_is_refused(fake, app_key):
    import jwt

    now = int(time.time())
    token = jwt.encode({"iat": now - 60, "exp": now + 600, "iss": str(fake.app.id)}, app_key[0], algorithm="RS256")
    r = requests.get(fake.api_url + "/app", timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "too far in the future" in r.json()["message"]
    ok = jwt.encode({"iat": now - 60, "exp": now + 540, "iss": str(fake.app.id)}, app_key[0], algorithm="RS256")
    assert requests.get(fake.api_url + "/app", timeout=10, headers={"Authorization": f"Bearer {ok}"}).status_code == 200


def test_a_repository_outside_the_installation_is_not_found(fake, installed):
    repo, inst = installed
    other = fake.create_repo("someone/else", {"a": "b"})
    token = _token(fake, inst)
    r = requests.get(f"{fake.api_url}/repos/{other.full_name}", timeout=10, headers={"Authorization": f"token {token}"})
    assert r.status_code == 404


def _token(fake, inst) -> str:
    import secrets as s

    token = "ghs_" + s.token_hex(18)
    fake.tokens[token] = (inst.id, time.time() + 600)
    return token


# -- GitHub's recorded exchanges (@octokit/fixtures) --------------------------------------------
SCENARIOS = ["git-refs", "create-file", "labels", "create-status", "errors", "add-labels-to-issue"]


def shape_problems(recorded, actual, path="$") -> list[str]:
    """Where ``actual`` lacks something ``recorded`` has, or has it as another JSON type.
    A null on either side matches anything (GitHub's nullable fields)."""
    if recorded is None or actual is None:
        return []
    kinds = (dict, list, str, bool, (int, float))
    for kind in kinds:
        if isinstance(recorded, kind) and not (isinstance(recorded, bool) and kind is not bool):
            if not isinstance(actual, kind) or (kind is not bool and isinstance(actual, bool)):
                return [f"{path}: recorded {type(recorded).__name__}, fake gave {type(actual).__name__}"]
            break
    out = []
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out += shape_problems(value, actual[key], f"{path}.{key}")
    elif isinstance(recorded, list) and recorded and actual:
        out += shape_problems(recorded[0], actual[0], f"{path}[0]")
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_answers_have_the_shape_of_githubs_recorded_ones(scenario, fake):
    try:
        exchanges = octokit.fixture(scenario)
    except octokit.OctokitUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    owner = "octokit-fixture-org"
    repo = fake.create_repo(f"{owner}/{scenario}", {"README.md": "# fixture\n"})
    parent = repo.refs["refs/heads/main"]
    head = fake.push(repo, {"other.txt": "2\n"}, "second", deliver=False)
    # As recorded: "1" is the default branch's head, "2" its parent.
    shas = {ZERO1: head, ZERO2: parent}
    inst = fake.install(owner, [repo.full_name])
    token = _token(fake, inst)
    first_get = next((e for e in exchanges if e["method"] == "get" and e["path"].endswith("/labels")), None)
    if first_get is not None:  # the repository's labels as they were when GitHub recorded
        from fake_github.state import Label

        for lab in first_get["response"]:
            repo.labels[lab["name"].lower()] = Label(
                fake.ids.next("label"), lab["name"], lab["color"], lab["description"]
            )

    compared = 0
    for e in exchanges:
        path = e["path"]
        for zero, real in shas.items():
            path = path.replace(zero, real)
        api_path = path.split("?")[0]
        if rest_match(fake, e["method"], api_path) is None:
            continue  # e.g. GET /git/refs/: answered by GitHub, absent from its description
        body = e.get("body")
        if isinstance(body, dict):
            body = json.loads(json.dumps(body).replace(ZERO1, shas[ZERO1]).replace(ZERO2, shas[ZERO2]))
        r = requests.request(
            e["method"].upper(),
            fake.api_url + path,
            timeout=10,
            json=body if body not in (None, "") else None,
            headers={
                "Authorization": f"token {token}",
                "Accept": e["reqheaders"].get("accept", "application/vnd.github.v3+json"),
            },
        )
        assert r.status_code == e["status"], (e["method"], path, r.status_code, r.text[:300])
        if e["response"] not in ("", None):
            assert shape_problems(e["response"], r.json()) == [], (e["method"], path)
        compared += 1
    assert compared >= 1


def rest_match(fake, method, path):
    return fake.description.match(method, path)
