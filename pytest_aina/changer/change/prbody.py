"""The PR body: the attestation's predicate, rendered for a reviewer.

:func:`render` reads nothing but the in-toto statement (:mod:`.attestation`), so every
figure a reviewer sees is one the committed record holds, and re-rendering a statement
gives the same text. Markdown for GitHub; it reads fine as plain text in the local forge.
"""

from __future__ import annotations

from typing import Any

MAX_TRIED_ROWS = 60  # past this, the table shows the winner, the baseline and the first failures


def title(stmt: dict) -> str:
    p = stmt["predicate"]
    v = p["variant"]
    best = _best_speedup(p)
    where = "on the Triton interpreter, CPU" if p["device"]["kind"] == "cpu" else f"on {p['device']['name']}"
    what = "tuned config" if v["kind"] == "config" else "new kernel source"
    gain = f" ({best:.2f}x {where})" if best else ""
    return f"{p['kernel']}: {what} for {_domain_short(v['domain'])}{gain}"


def render(stmt: dict) -> str:
    p = stmt["predicate"]
    out: list[str] = [f"## {title(stmt)}", ""]
    if p["device"]["kind"] == "cpu":
        out += [
            "> [!WARNING]",
            "> **Measured on a CPU, in Triton's interpreter: these timings are not GPU evidence.** The",
            "> interpreter runs each kernel program as Python and numpy, so which candidate wins here says",
            "> little about which wins on a GPU. Correctness was checked the same way CI checks it; the",
            "> speed claim must be re-measured on a GPU runner (the merge gate does) before it is believed.",
            "",
        ]
    out += _why(p) + _what_changes(stmt) + _before_after(p) + _tried(p) + _coverage(p)
    out += _reproduce(p) + _rollback(p) + _provenance(stmt)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------
# Sections


def _why(p: dict) -> list[str]:
    h = p.get("hypothesis") or {}
    gain = h.get("expected_gain")
    lines = [
        f"pytest-aina's evolution loop made this change for hypothesis `{h.get('id')}`"
        f" ({h.get('kind', 'unknown kind')}"
        + (f", expected gain {_num(gain)} GPU-seconds per day" if isinstance(gain, (int, float)) else "")
        + ")."
    ]
    summary = h.get("summary") or h.get("title") or h.get("description")
    if isinstance(summary, str) and summary.strip():
        lines += ["", f"> {summary.strip()}"]
    t = p.get("trigger") or {}
    tel = t.get("telemetry")
    if tel:
        lines += [
            "",
            f"Triggered by telemetry `{tel.get('path')}` (sha256 `{str(tel.get('sha256'))[:16]}`"
            + (f", {t['windows']['count']} windows" if t.get("windows", {}).get("count") else "")
            + (f", {t['windows']['start']} to {t['windows']['end']}" if t.get("windows", {}).get("start") else "")
            + ").",
        ]
    elif t.get("windows", {}).get("count"):
        w = t["windows"]
        lines += [
            "",
            f"Triggered by {w['count']} telemetry windows"
            + (f" from {w['start']} to {w['end']}" if w.get("start") else "")
            + ".",
        ]
    return lines + [""]


def _what_changes(stmt: dict) -> list[str]:
    p = stmt["predicate"]
    v = p["variant"]
    how = (
        f"binds `{v['function']}` with `{_config(v.get('config'))}`"
        if v["kind"] == "config"
        else f"is the new module `{v['module']}` (`{v['function']}`)"
    )
    lines = ["### What changes", "", f"- `{v['table']}`: variant `{v['name']}` {how}, for {_domain_long(v['domain'])}."]
    if v.get("module"):
        lines.append(f"- `{v['module']}`: the candidate's source, with a header naming its provenance.")
        winner = next((c for c in p.get("candidates") or [] if c.get("role") == "winner"), None) or {}
        meta = winner.get("meta") or {}
        if str(winner.get("proposer") or "").startswith("llm") or meta.get("model"):
            idea = str(meta.get("summary") or "").strip()
            lines += [
                "",
                "> [!IMPORTANT]",
                f"> **`{v['module']}` is code written by a model** (`{meta.get('model') or winner.get('proposer')}`): "
                "review it line by line, as you would a contributor's first patch. The checks below say it "
                "is right on every case they generated; they do not say it is the code you want to keep.",
                f"> The model's stated idea: *{_cell(idea)}*" if idea else "> The model stated no idea.",
                "",
            ]
    spec = p.get("spec") or {}
    added = spec.get("examples_added") or []
    if added:
        shapes = _cases(added)
        lines.append(
            f"- `{spec['path']}`: {len(added)} hot shape(s) pinned as examples ({shapes}); "
            f"`aina spec diff` classifies every change as *added*, nothing is removed or weakened."
        )
    skipped = spec.get("already_pinned") or []
    if skipped:
        lines.append(f"  Already pinned, left as they were: {_cases(skipped)}.")
    lines.append(
        f"- `{v['test']}`: the generated tests: the variant through the plugin's `run_case` at the hot "
        "shapes and the corners of its domain, and dispatch routing in and out of the domain."
    )
    lines.append(f"- `{p['attestation']}`: the in-toto statement this description is rendered from.")
    return lines + [""]


def _before_after(p: dict) -> list[str]:
    rows = p.get("measurements") or []
    if not rows:
        return ["### Before and after", "", "No timings were recorded for the winner.", ""]
    dev = p["device"]
    before_name = rows[0].get("before_label", "before")
    limit_head = "% of hardware limit (after)"
    lines = [
        "### Before and after",
        "",
        f"| case | before: {before_name} | after: {p['variant']['name']} | speedup | {limit_head} |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| `{r['case']}` | {_timing(r.get('before'))} | {_timing(r.get('after'))} | "
            f"{_ratio(r.get('speedup'))} | {_limit(r, dev)} |"
        )
    n = sorted({r["after"]["n"] for r in rows if r.get("after")})
    lines += [
        "",
        f"Medians of {'/'.join(map(str, n)) or '?'} timed calls per case with 95% confidence intervals "
        "(order statistics: no assumption about the distribution; where too few calls were timed the "
        "interval is [min, max] and its lower level is shown). Speedup is before/after of the medians, "
        "with an interval of joint level >= 95% (each median at 97.5%). "
        f"Clock: {dev.get('clock') or 'unknown'}; device: {dev.get('name')}.",
    ]
    if dev["kind"] != "cpu" and any(r.get("limit") for r in rows):
        lim = next(r["limit"] for r in rows if r.get("limit"))
        lines.append(
            f"Hardware limit: {lim.get('what')} of {dev.get('name')} ({lim.get('source')}), "
            f"against the spec's bytes model `{lim.get('model')}`."
        )
    return lines + [""]


def _side_by_side(sbs: dict | None) -> str:
    """The sentence on how the winner was decided: the best candidates timed again beside
    the baseline, after the search, with what each came to."""
    if not sbs:
        return ""
    ups = sbs.get("speedups") or {}
    each = ", ".join(f"`{cid}` {x:.2f}x" for cid, x in sorted(ups.items(), key=lambda kv: -kv[1]))
    out = "; ".join(f"`{cid}`: {why}" for cid, why in (sbs.get("failed") or {}).items())
    again = "; ".join(f"`{cid}`: {why}" for cid, why in (sbs.get("retried") or {}).items())
    return (
        f" The winner was decided on a second timing: the baseline and the {len(sbs.get('sides') or [1]) - 1} "
        f"best candidates, {sbs.get('rounds')} rounds of {sbs.get('calls')} calls each, one session at a "
        "time in alternating order, nothing else of the search running"
        + (f" (vs baseline: {each})" if each else "")
        + (f"; out of it: {out}" if out else "")
        + (f"; one session discarded and run again (deferred work): {again}" if again else "")
        + ". The before and after above are those timings."
    )


def _tried(p: dict) -> list[str]:
    s = p["search"]
    cands = p.get("candidates") or []
    failed = s.get("failures_by_reason") or {}
    lines = [
        "### What was tried",
        "",
        f"{s['evaluated']} candidates evaluated ({s['passed']} passed"
        + (", failures: " + ", ".join(f"{k} x{v}" for k, v in failed.items()) if failed else "")
        + f"), proposers {', '.join(s.get('proposers') or []) or 'none'}, seed {s.get('seed')}, "
        f"{_budget(s.get('budget') or {})}.",
        "",
        "Candidates are ranked on their own median time at the timed cases (score: calls/s, "
        "geometric mean over the cases); the baseline is what dispatch serves today, measured "
        "in the same run." + _side_by_side(s.get("side_by_side")),
        "",
        "| candidate | proposer | what | outcome | vs baseline | vs torch reference |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    base = next((c.get("score") for c in cands if c["role"] == "baseline" and c["outcome"] == "passed"), None)
    shown = cands
    if len(cands) > MAX_TRIED_ROWS:
        keep = [c for c in cands if c["role"] in ("winner", "baseline")]
        rest = [c for c in cands if c["role"] == "candidate"]
        shown = keep + rest[: MAX_TRIED_ROWS - len(keep)]
    for c in shown:
        score = c.get("score") if c["outcome"] == "passed" else None
        rel = _x(score / base) if isinstance(score, (int, float)) and isinstance(base, (int, float)) and base else ""
        lines.append(
            f"| `{c['id']}` | {_cell(c['proposer'])} | {_cell(_what(c))} | {_cell(_outcome(c))} | "
            f"{rel} | {_x(c.get('speedup_vs_reference'))} |"
        )
    if len(shown) < len(cands):
        lines.append(f"| ... | | {len(cands) - len(shown)} more in the attestation | | | |")
    hostile = [c for c in cands if c.get("hostile")]
    if hostile:
        lines += ["", "> [!CAUTION]", "> **Hostile candidates**: the sandbox caught these doing what no kernel does."]
        for c in hostile:
            lines.append(f"> - `{c['id']}` ({_cell(c['proposer'])}), every attempt:")
            lines += [f">   - {_cell(x.get('kind'))}: {_cell(x.get('detail'))}" for x in c.get("violations") or []]
    llm = p.get("llm") or {}
    for m in llm.get("models") or []:
        digests = ", ".join(f"`{d[:16]}`" for d in m.get("prompt_sha256") or []) or "not recorded"
        none = m.get("no_candidate") or 0
        why = ", ".join(f"{k} x{v}" for k, v in sorted((m.get("no_candidate_reasons") or {}).items()))
        calls = f"{m['requests']} request(s), {m['answers']} answer(s): " if isinstance(m.get("requests"), int) else ""
        cost = m.get("cost_usd")
        lines += [
            "",
            f"LLM `{m['model']}`: {calls}{m['candidates']} candidate(s)"
            + (f", {none} proposal(s) that gave none ({why})" if none else "")
            + f", {m['tokens']} tokens, "
            + (f"${cost:.4f}" if isinstance(cost, (int, float)) else "cost unknown (a model without a price)")
            + f"; prompt sha256 {digests}.",
        ]
    return lines + [""]


def _coverage(p: dict) -> list[str]:
    c = p.get("coverage") or {}
    lines = ["### Coverage of the new variant by its tests", ""]
    if c.get("percent") is None and c.get("statements") is None:
        return lines + [f"Not measured ({c.get('status', 'no figure')}).", ""]
    lines.append(
        f"{c['percent']}% of the statements of {c['scope']} in `{c['target']}` ({c['covered']} of "
        f"{c['statements']}) ran under `{c['tests']}` ({c.get('tool')}); the tests "
        + ("passed" if c.get("tests_passed") else "**failed**")
        + (f" ({c['tests_summary']})." if c.get("tests_summary") else ".")
    )
    if c.get("missing_lines"):
        lines.append(f"Lines not run: {_ranges(c['missing_lines'])}.")
    others = {k: f for k, f in (c.get("functions") or {}).items() if f.get("triton_jit") and f.get("statements")}
    if others:
        lines.append(
            "Triton kernels of that module: "
            + "; ".join(f"`{k}` {f['percent']}%" for k, f in sorted(others.items()))
            + "."
            + (
                " A kernel at 0% is one the variant does not launch at the tested shapes."
                if any(not f["covered"] for f in others.values())
                else ""
            )
        )
    return lines + [""]


def _reproduce(p: dict) -> list[str]:
    r = p.get("reproduce") or {}
    lines = ["### Reproduce", "", "```sh"]
    for key in ("tests", "spec", "search"):
        if r.get(key):
            lines.append(r[key])
    lines += ["```", ""]
    if r.get("note"):
        lines += [r["note"], ""]
    return lines


def _rollback(p: dict) -> list[str]:
    r = p.get("rollback") or {}
    return [
        "### Roll back",
        "",
        f"- Without a deploy: set `{r.get('pin')}` in the serving environment; every "
        f"{p['kernel']} call goes back to the generic variant.",
        f"- In the code: `{r.get('revert')}` (removes the variant, its tests and the record; "
        "keep the pinned examples if you like: they only add checks).",
        "",
    ]


def _provenance(stmt: dict) -> list[str]:
    p = stmt["predicate"]
    base = p.get("base") or {}
    env = p.get("environment") or {}
    pk = env.get("packages") or {}
    lines = [
        "### Provenance",
        "",
        f"The in-toto statement `{p['attestation']}` (predicate `{stmt['predicateType']}`) records the "
        "trigger, the hypothesis, every candidate with its score or failure, model and prompt digests, "
        "seeds, budget and environment. Its subjects:",
        "",
        "| file | sha256 |",
        "| --- | --- |",
    ]
    lines += [f"| `{s['name']}` | `{s['digest']['sha256'][:16]}` |" for s in stmt["subject"]]
    lines += [
        "",
        f"Base commit `{base.get('commit') or 'unknown'}`"
        + (" (with uncommitted changes)" if base.get("dirty") else "")
        + f"; Python {env.get('python', '?')}, torch {pk.get('torch', '?')}, triton {pk.get('triton', '?')}"
        + f"; made {p.get('created', '?')} by pytest-aina {pk.get('pytest-aina', '?')}.",
    ]
    return lines + [""]


# ---------------------------------------------------------------------------------------
# Formatting


def _best_speedup(p: dict) -> float | None:
    values = [r["speedup"]["value"] for r in p.get("measurements") or [] if r.get("speedup")]
    return max(values) if values else None


def _s(x: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x / 1e-9:.3g} ns"


def _timing(t: dict | None) -> str:
    if not t:
        return "not measured"
    lo, hi = t["ci95_s"]
    level = "" if t.get("ci_level", 1) >= 0.95 else f" ({100 * t['ci_level']:.0f}% level)"
    return f"{_s(t['median_s'])} [{_s(lo)}, {_s(hi)}]{level}"


def _ratio(r: dict | None) -> str:
    if not r:
        return "n/a"
    lo, hi = r["ci95"]
    level = "" if r.get("ci_level", 1) >= 0.95 else f" ({100 * r['ci_level']:.0f}% level)"
    return f"**{r['value']:.2f}x** [{lo:.2f}, {hi:.2f}]{level}"


def _limit(r: dict, dev: dict) -> str:
    if dev["kind"] == "cpu":
        return "n/a (CPU interpreter)"
    if r.get("pct_of_limit") is None:
        return "n/a (" + (r.get("limit_note") or "no limit known") + ")"
    return f"{r['pct_of_limit']:.1f}%"


def _x(v: Any) -> str:
    return f"{v:.3g}x" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _what(c: dict) -> str:
    if c["kind"] == "config":
        return _config(c.get("config")) or "heuristic defaults"
    return f"source, {c.get('source_chars')} chars, sha256 {str(c.get('source_sha256'))[:12]}"


def _outcome(c: dict) -> str:
    if c["outcome"] == "passed":
        tag = {"winner": "passed, **winner**", "baseline": "passed, baseline"}.get(c["role"], "passed")
        return tag + (f", score {c['score']:.3g} calls/s" if isinstance(c.get("score"), (int, float)) else "")
    # what failed: the detail's first line (the plugin's headline, the sandbox's reason), not
    # its last, which for a check is a re-run command and says nothing cut to a cell's width
    detail = [ln.strip() for ln in (c.get("detail") or "").splitlines() if ln.strip()]
    first = next((ln for ln in detail if not ln.startswith("re-run")), "")
    if len(first) > 160:
        first = first[:157] + "..."
    head = "**hostile**, " if c.get("hostile") else ""
    return head + f"failed at {c.get('failed_stage')}: {c.get('reason')}" + (f" ({first})" if first else "")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _config(cfg: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (cfg or {}).items())


def _case(dims: dict, dtype: str) -> str:
    return ",".join([f"{k}={v}" for k, v in dims.items()] + [dtype])


def _cases(items: list[dict]) -> str:
    return ", ".join("`" + _case(e["dims"], e["dtype"]) + "`" for e in items)


def _budget(b: dict) -> str:
    """'budget: 6 evaluations, 900 s, no token limit; used 6 evaluations in 144 s, stopped by evaluations'."""
    if not b:
        return "budget not recorded"
    limits = [
        f"{b['evaluations']} evaluations" if b.get("evaluations") is not None else "no evaluation limit",
        f"{_num(b['wall_s'])} s" if b.get("wall_s") is not None else "no time limit",
        f"{b['tokens']:,} tokens" if isinstance(b.get("tokens"), int) else "no token limit",
    ]
    text = "budget " + ", ".join(limits)
    used = b.get("used") or {}
    if used:
        spent = [f"{used.get('evaluations', 0)} evaluations"]
        if used.get("resumed"):
            spent.append(f"{used['resumed']} resumed from the checkpoint")
        if isinstance(used.get("wall_s"), (int, float)):
            spent.append(f"in {_num(used['wall_s'])} s")
        if used.get("tokens"):
            spent.append(f"{used['tokens']:,} tokens")
        text += "; used " + ", ".join(spent)
    if b.get("stopped_by"):
        text += f", stopped by {b['stopped_by']}"
    return text


def _domain_short(d: dict) -> str:
    dims = d.get("dims") or {}
    parts = [f"{k}={lo}" if lo == hi else f"{k} {lo}..{'' if hi is None else hi}" for k, (lo, hi) in dims.items()]
    if d.get("dtypes"):
        parts.append("/".join(d["dtypes"]))
    if d.get("arch"):
        parts.append("/".join(d["arch"]))
    return " ".join(parts) or "every call"


def _domain_long(d: dict) -> str:
    dims = d.get("dims") or {}
    parts = [f"{k} in [{lo}, {'no limit' if hi is None else hi}]" for k, (lo, hi) in dims.items()]
    parts.append("dtypes " + ", ".join(d["dtypes"]) if d.get("dtypes") else "any dtype")
    parts.append("arch " + ", ".join(d["arch"]) if d.get("arch") else "any architecture")
    return ", ".join(parts)


def _ranges(lines: list[int]) -> str:
    out, start, prev = [], None, None
    for n in sorted(lines):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)
