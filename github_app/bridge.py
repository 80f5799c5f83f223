"""The seam between the App and the evolution loop (``pytest_aina.changer.pipeline``).

The evolve job unpacks the repository at its baseline and calls :func:`evolve`; everything
after it (the PR, its labels, the provenance check) works from the
:class:`~github_app.change.Change` it returns. Only the ``EVOLUTION`` settings reach the
loop, never the App's secrets: candidates are untrusted code.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from github_app.change import Change

log = logging.getLogger(__name__)


class NoChange(Exception):
    """The loop ran and found nothing worth a PR (no candidate beat the baseline, or the
    hypothesis is not one it can act on); an outcome to record, not an error to retry."""


def evolve(checkout_dir: Path, hypothesis: dict[str, Any], settings: dict[str, Any]) -> Change:
    """Run the evolution loop for ``hypothesis`` on the repository in ``checkout_dir``.

    ``settings`` are the App's ``EVOLUTION`` settings (proposers, budget, seed, workers,
    device), passed to ``pytest_aina.changer.pipeline.evolve_to_change`` as they are.
    """
    try:
        from pytest_aina.changer.pipeline import EvolveError, evolve_to_change
    except ImportError as exc:
        raise NotImplementedError(
            f"pytest_aina has no evolution API the App can call ({exc}): the App cannot turn "
            "a hypothesis into a change without it") from None
    try:
        result = evolve_to_change(Path(checkout_dir), dict(hypothesis), dict(settings))
    except EvolveError as exc:
        raise NoChange(str(exc)) from exc
    return Change.from_json(result if isinstance(result, dict) else result.to_json())


def unpack_tarball(archive: Path, dest: Path) -> Path:
    """Extract a GitHub tarball (one top folder) into ``dest``; the repository root.

    ``filter="data"`` refuses absolute paths, ``..``, links out of ``dest`` and device
    files: the archive comes over the network.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter="data")
    entries = [p for p in dest.iterdir() if p.name != "pax_global_header"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def work_root(work_dir: str) -> Path:
    root = Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "aina-app"
    root.mkdir(parents=True, exist_ok=True)
    return root


def checkout(repo, ref: str, dest: Path) -> Path:
    """``repo`` at ``ref`` unpacked in ``dest`` (reused when already there: a resumed job
    finds its checkout, and the loop's checkpoint inside it); the repository root."""
    marker = dest / ".aina-checkout"
    if marker.exists():
        done_ref, _, rel = marker.read_text().partition("\n")
        if done_ref == ref and (dest / rel).is_dir():
            return dest / rel
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = dest.parent / f".{dest.name}.tar.gz"
    try:
        if not repo.archive("tarball", str(archive), ref):
            raise RuntimeError(f"{repo.full_name}: could not download the tarball of {ref}")
        root = unpack_tarball(archive, dest / "src")
    finally:
        archive.unlink(missing_ok=True)
    marker.write_text(f"{ref}\n{root.relative_to(dest)}")
    return root


def cached_checkout(repo, ref: str, work_dir: str, name: str) -> Path:
    """A read-only checkout of ``repo`` at ``ref`` shared by jobs (the Reasoner reads the
    specs and dispatch tables there); older refs of the same repository are removed."""
    base = work_root(work_dir) / "checkouts" / name.replace("/", "__")
    base.mkdir(parents=True, exist_ok=True)
    for old in base.iterdir():
        if old.name != ref and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return checkout(repo, ref, base / ref)


def job_checkout(repo, ref: str, work_dir: str, job_id: int) -> Path:
    """A checkout owned by one job (the loop writes in it); :func:`drop_job_checkout`."""
    return checkout(repo, ref, work_root(work_dir) / "jobs" / str(job_id))


def drop_job_checkout(work_dir: str, job_id: int) -> None:
    shutil.rmtree(work_root(work_dir) / "jobs" / str(job_id), ignore_errors=True)


__all__ = ["NoChange", "evolve", "checkout", "cached_checkout", "job_checkout",
           "drop_job_checkout", "unpack_tarball"]
