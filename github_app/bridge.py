"""The App's one bridge to the core (``pytest_aina``): the Reasoner, the evolution loop, and
the repository checkouts both work in.

* :func:`reasoner_report` — a repository's stored telemetry windows in, the Reasoner's
  report out: ranked :class:`~pytest_aina.reasoner.Hypothesis` objects, and the hot kernels
  left alone and why; :func:`worth_running` picks those to
  start evolution runs for, within the repository's policy (``rollback`` and ``retire``
  become removal PRs instead: :mod:`github_app.jobs.removals`);
* :func:`evolve` — a hypothesis in, a :class:`~pytest_aina.changer.change.Change` out, from
  the same pipeline ``aina evolve`` runs (:func:`pytest_aina.changer.pipeline.evolve`). Only
  the ``EVOLUTION`` settings reach the loop, never the App's secrets: candidates are
  untrusted code;
* :func:`checkout` and friends — the repository at a commit, unpacked from GitHub's tarball.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from github_app.policy import Policy
from pytest_aina.changer import pipeline
from pytest_aina.changer.change import Change, ChangeError
from pytest_aina.changer.settings import EvolutionSettings
from pytest_aina.devices import load_table
from pytest_aina.reasoner.detectors import ReasonerConfig
from pytest_aina.reasoner.hypothesis import Hypothesis, HypothesisError
from pytest_aina.reasoner.inputs import load_specs, load_tables
from pytest_aina.reasoner.report import Report, reason
from pytest_aina.telemetry.window import Window
from pytest_aina.telemetry.wire import encode_line

log = logging.getLogger(__name__)

#: What the telemetry snapshot digested into a change's attestation is called there.
TELEMETRY_SNAPSHOT = "app-store-telemetry.jsonl"


class NoChange(Exception):
    """The loop ran and found nothing worth a PR (no candidate beat the baseline, or the
    hypothesis is not one it can act on); an outcome to record, not an error to retry."""


# ---------------------------------------------------------------------------------------
# The Reasoner


def reasoner_report(
    rows: list[tuple[int, dict[str, Any]]],
    checkout: Path,
    *,
    policy: Policy | None = None,
    merged_at: dict[tuple[str, str], float] | None = None,
) -> tuple[Report, list[str]]:
    """The Reasoner's report (the ranked hypotheses, and the hot kernels left alone and why,
    ``report.left_alone``, for the dashboard) on one repository's stored windows (``(stored id, window)``, as
    ``store.telemetry_rows`` gives them: every hypothesis cites its windows as
    ``telemetry_windows#<id>``, the ids a revert or retire PR shows), with the specs and
    dispatch tables of ``checkout`` (the repository at its baseline); and the Reasoner's notes
    about its inputs. ``policy``: the repository's, whose ``retire.unused_days`` is the silence
    a ``retire`` hypothesis needs (:func:`reasoner_config`); ``merged_at``: (kernel, variant) ->
    when it merged, from the recorded claims (a younger variant is not retired)."""
    specs, notes = load_specs(checkout / "specs")
    tables, table_notes = load_tables(checkout / "kernels" / "variants")
    report = reason(
        [Window.from_dict(w, ref=f"telemetry_windows#{i}") for i, w in rows],
        specs,
        tables=tables,
        devices=load_table(None),
        config=reasoner_config(policy),
        merged_at=merged_at,
    )
    return report, notes + table_notes + report.notes


def reasoner_config(policy: Policy | None) -> ReasonerConfig:
    """The Reasoner as the App runs it: a variant is ``retire``d after the policy's
    ``retire.unused_days`` without a call (strict: only where the telemetry reaches back that
    far), not after ``aina reason``'s six hours of a sample."""
    days = (policy or Policy()).retire.unused_days
    return ReasonerConfig(retire_idle_s=days * 86400.0, retire_strict=True)


def stored_hypotheses(rows: list[dict[str, Any]]) -> list[Hypothesis]:
    """The store's hypotheses (their JSON form) as objects; a row that does not read back
    (written by another version) is left out, with a warning."""
    out = []
    for row in rows:
        try:
            out.append(Hypothesis.from_json(row))
        except HypothesisError as exc:
            log.warning("stored hypothesis %r left out: %s", row.get("id"), exc)
    return out


def worth_running(
    hypotheses: list[Hypothesis], policy: Policy, *, open_ids: set[str], rejected_ids: set[str], queued_ids: set[str]
) -> list[Hypothesis]:
    """The hypotheses to start evolution runs for, best first.

    At most one open PR (or queued run) per hypothesis; none for a hypothesis a human
    already turned down (its PR was closed unmerged: asking again is their call, through
    the dashboard or ``/aina retry``); within the policy's kernels, gain threshold, and
    free PR slots (open PRs plus runs already queued count against ``max_open_prs``).
    """
    if not policy.automatic:
        return []
    slots = policy.max_open_prs - len(open_ids) - len(queued_ids - open_ids)
    chosen: list[Hypothesis] = []
    for h in hypotheses:
        if slots <= 0:
            break
        if not h.actionable:
            continue  # rollback and retire: a removal PR (github_app.jobs.removals), not a run
        if h.id in open_ids or h.id in queued_ids or h.id in rejected_ids:
            continue
        if h.expected_gain < policy.min_expected_gain or h.expected_gain <= 0:
            continue
        if not policy.kernel_allowed(h.kernel):
            continue
        chosen.append(h)
        slots -= 1
    return chosen


# ---------------------------------------------------------------------------------------
# The evolution loop


def evolve(
    checkout_dir: Path, hypothesis: Hypothesis, settings: EvolutionSettings, *, base: str, windows: list[dict[str, Any]]
) -> Change:
    """Run the evolution loop for ``hypothesis`` on the repository in ``checkout_dir``
    (unpacked at commit ``base``, which the change's provenance names).

    ``windows`` are the telemetry windows the App holds for the repository: written beside
    the checkout as JSON lines, their digest goes into the change's attestation as the
    telemetry that triggered it. Raises :class:`NoChange` when the loop finds nothing worth
    a PR, :class:`~pytest_aina.changer.change.ChangeError` when its change cannot be made or
    does not verify.
    """
    checkout_dir = Path(checkout_dir)
    snapshot = checkout_dir.parent / TELEMETRY_SNAPSHOT
    snapshot.write_text("".join(encode_line(Window.from_dict(w)) + "\n" for w in windows))
    try:
        done = pipeline.evolve(checkout_dir, [hypothesis], replace(settings, telemetry=str(snapshot)), base=base)
    except pipeline.EvolveError as exc:
        raise NoChange(str(exc)) from exc
    if done.change is None:
        raise NoChange(done.why_no_change)
    if done.problems:
        raise ChangeError("the change's provenance does not verify: " + "; ".join(done.problems))
    return done.change


# ---------------------------------------------------------------------------------------
# Checkouts


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


__all__ = [
    "NoChange",
    "TELEMETRY_SNAPSHOT",
    "cached_checkout",
    "checkout",
    "drop_job_checkout",
    "evolve",
    "job_checkout",
    "reasoner_config",
    "reasoner_report",
    "stored_hypotheses",
    "unpack_tarball",
    "worth_running",
]
