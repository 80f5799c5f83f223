"""The provenance of a change: an in-toto statement about how it was made.

The statement (https://in-toto.io/Statement/v1) names every file of the change with its
sha256 as a *subject*, and says in its *predicate* (type :data:`PREDICATE_TYPE`) what
triggered the change, the hypothesis, every candidate tried with its score or failure,
the model and prompt digests, the seeds and budget, the environment, the base commit,
the before/after measurements with confidence intervals, and how to repeat it. The PR
body is rendered from this statement alone (:mod:`.prbody`), so what a reviewer reads is
what the record says. The predicate's format is documented in ``docs/provenance.md``.

Nothing secret goes in: candidate ``meta`` keeps the keys known to be safe, drops unknown
keys whose name looks like a credential, and every string of the statement goes through
the sandbox's redactor (secret values of the environment, well-known token shapes).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_aina.changer.model import Attempt, SearchRecord
from pytest_aina.reasoner.hypothesis import Hypothesis, HypothesisError
from pytest_aina.sandbox.redact import Redactor, is_secret_name

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://pytest-aina.dev/evolution/v1"

#: Candidate.meta keys that describe an LLM call without revealing anything secret.
SAFE_META = frozenset(
    {
        # what pytest_aina.changer.proposers.llm records
        "model",
        "api_base",
        "prompt_digest",
        "template_digest",
        "answer_digest",
        "summary",
        "temperature",
        "seed",
        "attempts",
        "tokens",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "cost_note",
        # common spellings of the same, from a team's own proposer
        "provider",
        "prompt_sha256",
        "response_sha256",
        "response_digest",
        "total_tokens",
        "cost",
        "retries",
        "malformed",
        "max_tokens",
        "finish_reason",
        "latency_s",
        "error",
        "origin",
        "path",
        "note",
    }
)

#: How much of a failure's detail the record keeps (a traceback tail is enough to judge it).
DETAIL_CHARS = 600


# ---------------------------------------------------------------------------------------
# Statistics: medians with distribution-free confidence intervals


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def median_ci(samples: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(low, high, achieved level) of a confidence interval for the median.

    Order statistics, no assumption on the distribution: the number of samples below the
    true median is Binomial(n, 1/2), so [x_(j), x_(n+1-j)] covers it with probability
    P(j <= B <= n - j). The widest j reaching ``confidence`` is chosen; with too few
    samples (n < 6 for 95%) the interval is [min, max] and the achieved level is lower,
    which the caller reports rather than hides.
    """
    s = sorted(samples)
    n = len(s)
    if n == 0:
        raise ValueError("median_ci: no samples")
    if n == 1:
        return s[0], s[0], 0.0
    total = 2**n
    # coverage(j) = (2^n - 2 * sum_{i<j} C(n, i)) / 2^n, the lower tail kept as it grows:
    # exact integers (the same floats as summing the middle terms), in time linear in j, so
    # production verification can take intervals of thousands of telemetry windows.
    term = n  # C(n, 1)
    tail = 1 + term  # sum_{i<2} C(n, i)
    best = (1, (total - 2) / total)
    for j in range(2, n // 2 + 1):
        level = (total - 2 * tail) / total
        if level < confidence:
            break
        best = (j, level)
        term = term * (n - j + 1) // j  # C(n, j) from C(n, j - 1)
        tail += term
    j, level = best
    return s[j - 1], s[n - j], level


def _coverage(n: int, j: int, total: int) -> float:
    return sum(math.comb(n, i) for i in range(j, n - j + 1)) / total


def summarize(samples: list[float] | None) -> dict | None:
    """Median, its 95% interval (and the level actually reached), n, min, max; seconds."""
    if not samples:
        return None
    lo, hi, level = median_ci(samples, 0.95)
    return {
        "n": len(samples),
        "median_s": median(samples),
        "ci95_s": [lo, hi],
        "ci_level": round(level, 4),
        "min_s": min(samples),
        "max_s": max(samples),
    }


def ratio_ci(num: list[float], den: list[float]) -> dict | None:
    """median(num) / median(den) with an interval of joint level >= 95%: each median gets a
    97.5% interval (Bonferroni), and the ratio's bounds are the ratios of opposite ends."""
    if not num or not den:
        return None
    nlo, nhi, nl = median_ci(num, 0.975)
    dlo, dhi, dl = median_ci(den, 0.975)
    return {
        "value": median(num) / median(den),
        "ci95": [nlo / dhi, nhi / dlo],
        "ci_level": round(max(0.0, nl + dl - 1.0), 4),
    }


# ---------------------------------------------------------------------------------------
# Pieces of the statement


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def subjects(files: Mapping[str, str | None], *, exclude: str | None = None) -> list[dict]:
    """One in-toto subject per file the change writes (sorted by path), with its sha256."""
    return [
        {"name": path, "digest": {"sha256": sha256_text(text)}}
        for path, text in sorted(files.items())
        if text is not None and path != exclude
    ]


def sanitize_meta(meta: Mapping[str, Any]) -> dict:
    """The candidate's meta without anything that may be a credential: known keys are kept,
    unknown ones only when their name does not look like a secret (then redacted anyway)."""
    out = {}
    for key, value in meta.items():
        if key in SAFE_META or not is_secret_name(str(key)):
            out[str(key)] = value
    return out


def timing_summary(t: Mapping[str, Any]) -> dict:
    """A Verdict timing (a :class:`~pytest_aina.changer.model.Timing` as a dict) condensed:
    the samples stay in the search checkpoint, the record keeps the statistics."""
    cand = summarize(t.get("samples_s"))
    ref = summarize(t.get("reference_samples_s"))
    return {
        "case": t.get("case"),
        "clock": t.get("clock"),
        "candidate": cand,
        "reference": ref,
        "speedup_vs_reference": ratio_ci(t.get("reference_samples_s") or [], t.get("samples_s") or []),
    }


def candidate_entry(attempt: Attempt, *, role: str) -> dict:
    """One row of 'what was tried': enough to judge the candidate without its code."""
    c, v = attempt.candidate, attempt.verdict
    entry: dict[str, Any] = {"id": c.id, "role": role, "proposer": c.proposer, "parent": c.parent}
    if c.config is not None:
        entry["kind"] = "config"
        entry["config"] = dict(c.config)
    if c.source is not None:
        entry["kind"] = "source" if c.config is None else "source+config"
        entry["source_sha256"] = sha256_text(c.source)
        entry["source_chars"] = len(c.source)
        entry["function"] = c.function
    entry.setdefault("kind", "config")
    entry["outcome"] = "passed" if v.passed else "failed"
    entry["stages_passed"] = list(v.stages)
    if not v.passed:
        entry["failed_stage"] = v.failed_stage
        entry["reason"] = v.reason
        entry["detail"] = failure_detail(v.detail or "")
    # every rule it broke in the sandbox, none left out: a hostile candidate is judged on all
    entry["hostile"] = v.hostile
    entry["violations"] = [dict(x) for x in v.violations]
    entry["score"] = v.score
    entry["speedup_vs_reference"] = v.speedup
    entry["wall_s"] = v.wall_s
    entry["stage_s"] = dict(v.stage_s)
    entry["timings"] = [timing_summary(t) for t in v.timings]
    entry["sandbox"] = dict(v.sandbox)
    entry["meta"] = sanitize_meta(c.meta)
    return entry


def failure_detail(detail: str) -> str:
    """A failure's detail as the record keeps it: without the plugin's "re-run just this
    case" commands (paths of a sandbox that no longer exists), its head (what failed) and, when
    long, its tail (where a traceback ends), at most about :data:`DETAIL_CHARS`."""
    kept, skip = [], False
    for line in detail.splitlines():
        if line.strip().startswith("re-run"):
            skip = True  # the command is on the next line(s), indented
            continue
        if skip and line.startswith("    "):
            continue
        skip = False
        kept.append(line)
    text = "\n".join(kept).strip()
    if len(text) <= DETAIL_CHARS:
        return text
    head = DETAIL_CHARS // 3
    return text[:head] + " ... " + text[-(DETAIL_CHARS - head) :]


def llm_summary(attempts: list[Attempt], failures: list[dict] | None = None) -> dict:
    """Models and prompts used, and the tokens and cost spent, over every candidate and
    over every answer that produced none (``failures``: the LLM proposer's records of
    malformed answers, provider errors and exhausted budgets, which cost tokens too)."""
    models: dict[str, dict] = {}

    def model_entry(model: str) -> dict:
        return models.setdefault(
            model,
            {
                "model": model,
                "candidates": 0,
                "no_candidate": 0,
                "requests": 0,  # HTTP calls, provider errors included
                "answers": 0,  # calls the model answered (usable or not)
                "prompt_sha256": [],
                "tokens": 0,
                "cost_usd": 0.0,  # None once any call was unpriced: unknown, not free
            },
        )

    def spend(m: dict, meta: Mapping[str, Any]) -> None:
        digest = meta.get("prompt_sha256") or meta.get("prompt_digest")
        if digest and digest not in m["prompt_sha256"]:
            m["prompt_sha256"].append(digest)
        template = meta.get("template_digest")
        if template and template not in m.setdefault("template_sha256", []):
            m["template_sha256"].append(template)
        m["tokens"] += _tokens(meta)
        calls = meta.get("attempts")
        if isinstance(calls, list):
            m["requests"] += len(calls)
            m["answers"] += sum(1 for c in calls if isinstance(c, Mapping) and c.get("outcome") != "provider_error")
        cost = meta.get("cost_usd", meta.get("cost"))
        priced = isinstance(cost, (int, float)) and not isinstance(cost, bool)
        if not priced and (cost is not None or meta.get("cost_note") or _tokens(meta)):
            m["cost_usd"] = None  # tokens were spent at a price nobody knows
        elif priced and m["cost_usd"] is not None:
            m["cost_usd"] += cost

    for a in attempts:
        meta = a.candidate.meta or {}
        model = meta.get("model")
        if not model and not a.candidate.proposer.startswith("llm"):
            continue
        m = model_entry(str(model or a.candidate.proposer.partition(":")[2] or "unknown"))
        m["candidates"] += 1
        spend(m, meta)
    for f in failures or []:
        if not isinstance(f, Mapping):
            continue
        m = model_entry(str(f.get("model") or str(f.get("proposer") or "").partition(":")[2] or "unknown"))
        m["no_candidate"] += 1
        reasons = m.setdefault("no_candidate_reasons", {})
        reasons[str(f.get("reason") or "unknown")] = reasons.get(str(f.get("reason") or "unknown"), 0) + 1
        spend(m, f)
    return {
        "models": [models[k] for k in sorted(models)],
        "tokens": sum(m["tokens"] for m in models.values()),
        "cost_usd": None
        if any(m["cost_usd"] is None for m in models.values())
        else round(sum(m["cost_usd"] for m in models.values()), 6),
    }


def _number(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _tokens(meta: Mapping[str, Any]) -> float:
    """Tokens one candidate cost: ``tokens.total`` (the LLM proposer's), ``total_tokens``,
    a number under ``tokens``, or prompt + completion."""
    t = meta.get("tokens")
    if isinstance(t, Mapping) and _number(t.get("total")) is not None:
        return t["total"]
    for v in (meta.get("total_tokens"), t):
        if _number(v) is not None:
            return v
    return (_number(meta.get("prompt_tokens")) or 0) + (_number(meta.get("completion_tokens")) or 0)


def redact(value: Any) -> Any:
    """Every string inside ``value`` with secrets of this environment and token shapes masked."""
    return Redactor().value(value)


# ---------------------------------------------------------------------------------------
# The statement


def statement(*, files: Mapping[str, str | None], attestation_path: str, predicate: dict) -> dict:
    """The in-toto statement: subjects are the change's files (all but the attestation); the
    paths it deletes, which have no digest, are listed in the predicate's ``deleted``."""
    deleted = sorted(p for p, text in files.items() if text is None)
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(files, exclude=attestation_path),
        "predicateType": PREDICATE_TYPE,
        "predicate": redact(dict(predicate, deleted=deleted) if deleted else predicate),
    }


def dumps(stmt: dict) -> str:
    """The statement as committed: stable key order, two-space indent, a final newline."""
    return json.dumps(stmt, indent=2, ensure_ascii=False) + "\n"


def side_by_side_summary(confirmation: dict | None) -> dict | None:
    """What the winner was decided on, without the samples (the measurements carry the
    winner's and the baseline's): the protocol, each contender's speedup, who was out."""
    if not confirmation:
        return None
    keys = (
        "rounds",
        "calls",
        "order",
        "sides",
        "baseline",
        "speedups",
        "failed",
        "retried",
        "error",
        "wall_s",
        "ran_on",
    )
    return {k: confirmation[k] for k in keys if k in confirmation}


def predicate_of(record: SearchRecord) -> dict:
    """The parts of the predicate that come straight from the search record."""
    winner = record.winner
    candidates = []
    if record.baseline is not None:
        candidates.append(candidate_entry(record.baseline, role="baseline"))
    base_id = record.baseline.candidate.id if record.baseline is not None else None
    for a in record.attempts:
        if a.candidate.id == base_id:  # the search evaluates the baseline as one of its attempts
            continue
        candidates.append(candidate_entry(a, role="winner" if a.candidate.id == winner else "candidate"))
    failures: dict[str, int] = {}
    for a in record.attempts:
        if not a.verdict.passed:
            key = a.verdict.reason or "unknown"
            failures[key] = failures.get(key, 0) + 1
    return {
        "search": {
            "seed": record.seed,
            "budget": dict(record.budget),
            "proposers": list(record.proposers),
            "started": record.started,
            "finished": record.finished,
            "benchmark_cases": list(record.benchmark_cases),
            "evaluated": len(record.attempts),
            "passed": sum(1 for a in record.attempts if a.verdict.passed),
            "failures_by_reason": dict(sorted(failures.items())),
            "repeat": record.repeat,
            "side_by_side": side_by_side_summary(record.side_by_side),
        },
        "candidates": candidates,
        "llm": llm_summary(record.attempts, (record.environment or {}).get("proposer_failures")),
    }


# ---------------------------------------------------------------------------------------
# Verifying: THE check of a change's provenance (aina evolve, the App's check, the gate)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse(text: str | bytes | None) -> dict | None:
    """The statement in ``text`` as a JSON object, or None when it is not one."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_statement(text: str | bytes) -> bool:
    """Whether ``text`` is an in-toto statement of pytest-aina's predicate type."""
    return (parse(text) or {}).get("predicateType") == PREDICATE_TYPE


def base_commit(stmt: Mapping[str, Any]) -> str | None:
    """The commit the statement says its change was made on (``predicate.base.commit``)."""
    p = stmt.get("predicate")
    base = p.get("base") if isinstance(p, dict) else None
    commit = base.get("commit") if isinstance(base, dict) else None
    return commit if isinstance(commit, str) and commit else None


def verify(
    changed: Mapping[str, str | bytes | None],
    *,
    attestation: str,
    base: str | None = None,
    statement: str | bytes | None = None,
) -> list[str]:
    """Every problem with a change's provenance, one sentence each; [] when there is none.

    ``changed`` holds every path the change (a PR, a branch on top of its base) changes,
    with its content at the head (None: deleted); ``attestation`` is the statement's path,
    and ``statement`` its text when it is not among ``changed``. ``base`` is the commit the
    change sits on (a PR's base); None leaves it unchecked (a change not committed yet).

    The rules: the statement is pytest-aina's in-toto statement; the files changed are
    exactly the files it declares (its subjects, and its ``deleted``), each with the sha256
    it declares; it names the hypothesis (a readable one), the digest of the telemetry that
    triggered the change, and the base commit, which must be ``base``.
    """
    text = statement if statement is not None else changed.get(attestation)
    if text is None:
        return [f"{attestation}: the attestation is missing"]
    try:
        stmt = json.loads(text)
    except ValueError as exc:
        return [f"{attestation}: the attestation is not JSON ({exc})"]
    if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
        return [f"{attestation}: not an in-toto statement (_type is not {STATEMENT_TYPE})"]
    problems = []
    if stmt.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"{attestation}: the predicate type is {stmt.get('predicateType')!r}, not {PREDICATE_TYPE}")
    p = stmt.get("predicate") if isinstance(stmt.get("predicate"), dict) else {}
    problems += [problem for _, _, problem in check_files(changed, stmt, attestation=attestation) if problem]
    try:
        Hypothesis.from_json(p.get("hypothesis"))
    except HypothesisError as exc:
        problems.append(f"{attestation}: the attestation names no readable hypothesis (predicate.hypothesis: {exc})")
    tel = (p.get("trigger") or {}).get("telemetry") if isinstance(p.get("trigger"), dict) else None
    if not (isinstance(tel, dict) and isinstance(tel.get("sha256"), str) and _SHA256.match(tel["sha256"])):
        problems.append(
            f"{attestation}: the attestation has no sha256 of the telemetry that triggered the change "
            "(predicate.trigger.telemetry.sha256)"
        )
    made_on = base_commit(stmt)
    if made_on is None:
        problems.append(
            f"{attestation}: the attestation does not name the commit the change was made on (predicate.base.commit)"
        )
    elif base is not None and made_on != base:
        problems.append(
            f"the change was made on {made_on[:12]} but sits on {base[:12]}: its measurements are of "
            "another base (make the change again on this one)"
        )
    return problems


def check_files(
    changed: Mapping[str, str | bytes | None], stmt: Mapping[str, Any], *, attestation: str
) -> list[tuple[str, str, str | None]]:
    """(path, status, problem or None) for every path changed or declared, sorted: the
    per-file half of :func:`verify`, for a table of what matched. Status is ``ok``,
    ``deleted``, ``MISMATCH``, ``not attested`` or ``missing``."""
    declared: dict[str, str] = {}
    rows: list[tuple[str, str, str | None]] = []
    for i, s in enumerate(stmt.get("subject") or []):
        name = s.get("name") if isinstance(s, dict) else None
        digest = (
            (s.get("digest") or {}).get("sha256") if isinstance(s, dict) and isinstance(s.get("digest"), dict) else None
        )
        if not isinstance(name, str) or not isinstance(digest, str):
            rows.append(
                (f"subject[{i}]", "MISMATCH", f"{attestation}: subject {i} is not {{name, digest: {{sha256}}}}")
            )
            continue
        declared[name] = digest
    p = stmt.get("predicate") if isinstance(stmt.get("predicate"), dict) else {}
    deleted = {x for x in p.get("deleted") or [] if isinstance(x, str)}
    for path in sorted((set(changed) | set(declared) | deleted) - {attestation}):
        content = changed.get(path)
        if path not in changed:
            if path in declared:
                rows.append((path, "missing", f"{path}: named in the attestation but not in the change"))
            continue  # declared deleted and unchanged: it was not there to delete
        if content is None:
            if path in deleted:
                rows.append((path, "deleted", None))
            elif path in declared:
                rows.append((path, "missing", f"{path}: named in the attestation but not in the change"))
            else:
                rows.append(
                    (path, "not attested", f"{path}: deleted by the change but not declared in the attestation")
                )
            continue
        actual = hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()
        want = declared.get(path)
        if want is None:
            why = "declared deleted" if path in deleted else "not declared"
            rows.append((path, "not attested", f"{path}: changed by the change but {why} in the attestation"))
        elif actual != want:
            rows.append((path, "MISMATCH", f"{path}: sha256 {actual[:12]} but the attestation says {want[:12]}"))
        else:
            rows.append((path, "ok", None))
    return rows
