"""GitHub's published descriptions, fetched with ``npm pack`` into an ignored cache.

* ``@octokit/openapi`` — the REST API description (OpenAPI 3.0) the fake checks every
  request and response against;
* ``@octokit/openapi-webhooks`` — the webhook payload schemas (OpenAPI 3.1) the webhook
  tests generate payloads from;
* ``@octokit/fixtures`` — recorded exchanges with api.github.com whose shapes the fake's
  answers must have.

Versions are pinned so a run is repeatable; the cache lives in ``tests/fixtures/octokit/``
(git-ignored, never committed). Without npm the tests that need these files fail with the
command that fetches them, rather than skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from functools import cache
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / "fixtures" / "octokit"

PACKAGES = {
    # package name: (version, members wanted from the tarball, relative to "package/")
    "@octokit/openapi": ("23.0.2", ("generated/api.github.com.json",)),
    "@octokit/openapi-webhooks": ("12.1.0", ("generated/api.github.com.json",)),
    "@octokit/fixtures": ("23.1.2", ("scenarios/api.github.com/",)),
}


class OctokitUnavailable(RuntimeError):
    pass


def _folder(package: str) -> Path:
    version = PACKAGES[package][0]
    return CACHE / f"{package.split('/')[1]}-{version}"


def how_to_fetch() -> str:
    specs = " ".join(f"{p}@{v}" for p, (v, _) in PACKAGES.items())
    return (
        f"these tests need GitHub's published API descriptions from npm. Install npm "
        f"(Node.js) and run the tests again (they fetch them into {CACHE}), or fetch "
        f"by hand: mkdir -p {CACHE}/tgz && cd {CACHE}/tgz && npm pack {specs}"
    )


def fetch(package: str) -> Path:
    """The unpacked (wanted part of the) package, fetching it on first use."""
    folder = _folder(package)
    done = folder / ".complete"
    if done.exists():
        return folder
    version, members = PACKAGES[package]
    tgz_dir = CACHE / "tgz"
    tgz_dir.mkdir(parents=True, exist_ok=True)
    name = package.lstrip("@").replace("/", "-") + f"-{version}.tgz"
    tgz = tgz_dir / name
    if not tgz.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise OctokitUnavailable(how_to_fetch())
        with tempfile.TemporaryDirectory(dir=tgz_dir) as tmp:
            proc = subprocess.run(
                [npm, "pack", f"{package}@{version}", "--silent"], cwd=tmp, capture_output=True, text=True, timeout=300
            )
            if proc.returncode != 0 or not (Path(tmp) / name).exists():
                raise OctokitUnavailable(
                    f"npm pack {package}@{version} failed: {proc.stderr.strip()[-2000:]}\n{how_to_fetch()}"
                )
            os.replace(Path(tmp) / name, tgz)
    # Unpack into a temporary folder and rename: two test runs at once do not see halves.
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=".unpack-"))
    try:
        with tarfile.open(tgz) as tar:
            wanted = [
                m
                for m in tar.getmembers()
                if any(
                    m.name == "package/" + w or (w.endswith("/") and m.name.startswith("package/" + w)) for w in members
                )
            ]
            tar.extractall(tmp, members=wanted, filter="data")
        (tmp / "package" / ".complete").write_text(version)
        try:
            os.replace(tmp / "package", folder)
        except OSError:  # another run finished first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


@cache
def rest_description() -> dict:
    return json.loads((fetch("@octokit/openapi") / "generated" / "api.github.com.json").read_text())


@cache
def webhook_description() -> dict:
    return json.loads((fetch("@octokit/openapi-webhooks") / "generated" / "api.github.com.json").read_text())


def fixture(scenario: str) -> list[dict]:
    path = fetch("@octokit/fixtures") / "scenarios" / "api.github.com" / scenario / "normalized-fixture.json"
    return json.loads(path.read_text())
