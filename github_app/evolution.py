"""The seam between the App and the evolution loop (the Changer, issue "The Changer").

The App's evolve job unpacks the repository at its baseline into ``checkout_dir`` and calls
:func:`evolve`; everything after (the PR, its labels, the provenance check) works from the
:class:`~github_app.change.Change` it returns. Until ``pytest_aina`` exposes its evolution
API, :func:`evolve` raises :class:`NotImplementedError` with that explanation, and the evolve
job records the run as failed with that message (visible on the dashboard) instead of
pretending.
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


def evolve(checkout_dir: Path, hypothesis: dict[str, Any], config: dict[str, Any]) -> Change:
    """Run the evolution loop for ``hypothesis`` on the repository in ``checkout_dir``."""
    try:
        from pytest_aina import evolution  # noqa: F401  (issue 5: the Changer)
    except ImportError:
        raise NotImplementedError(
            "pytest_aina has no evolution API yet (issue 5, the Changer): the App cannot "
            "turn a hypothesis into a change until it lands") from None
    api = getattr(evolution, "evolve_to_change", None)
    if api is None:
        raise NotImplementedError(
            "pytest_aina.evolution exists but has no evolve_to_change(checkout_dir, "
            "hypothesis, config) yet; github_app.evolution.evolve calls it")
    result = api(Path(checkout_dir), hypothesis, config)
    if isinstance(result, Change):
        return result
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


def checkout(repo, ref: str, work_dir: str = "") -> tuple[Path, Path]:
    """Download ``repo`` at ``ref`` and unpack it; (root to clean up, repository root)."""
    base = Path(tempfile.mkdtemp(prefix="aina-evolve-", dir=work_dir or None))
    try:
        archive = base / "repo.tar.gz"
        if not repo.archive("tarball", str(archive), ref):
            raise RuntimeError(f"{repo.full_name}: could not download the tarball of {ref}")
        root = unpack_tarball(archive, base / "src")
        archive.unlink()
        return base, root
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
