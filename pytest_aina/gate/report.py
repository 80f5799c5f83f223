"""The verdict for people: Markdown for ``$GITHUB_STEP_SUMMARY`` and the PR, and plain text.

The Markdown leads with the verdict, then one line per check, then the evidence table
(case, base, head, ratio with its interval, claimed, reproduced?) and a Mermaid
``xychart-beta`` chart per case of base and head samples, which GitHub renders without any
image hosting.
"""

from __future__ import annotations

from pytest_aina.gate.verdict import FAIL, NEEDS, PASS, SKIPPED, GateResult

ICON = {PASS: "✅", FAIL: "❌", NEEDS: "⏸️", SKIPPED: "➖"}
WORD = {PASS: "pass", FAIL: "fail", NEEDS: "needs a human or more evidence", SKIPPED: "skipped"}
MAX_CHARTS = 4
MAX_POINTS = 40


def _ms(samples: list[float]) -> str:
    if not samples:
        return "–"
    s, n = sorted(samples), len(samples)
    mid = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return f"{mid * 1e3:.3g} ms"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def evidence_table(result: GateResult) -> list[str]:
    if not result.evidence:
        return []
    lines = [
        "| case | device | base (median) | head (median) | head/base (95% CI) | outcome | claimed | reproduced? |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result.evidence:
        c = r.get("comparison")
        ratio = f"{c['ratio']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}] n={c['n']}" if c else r.get("status", "")
        claim = r.get("claim") or {}
        claimed = f"{claim['claimed']:.2f}x" if claim.get("claimed") else "–"
        rep = {True: "yes", False: "**no**", None: "needs evidence"}.get(claim.get("reproduced"), "–") if claim else "–"
        outcome = (
            c["outcome"]
            if c
            else (r.get("reason", "") or "").splitlines()[0][:80]
            if r.get("reason")
            else r.get("status")
        )
        lines.append(
            f"| {_cell(r['kernel'] + ' ' + r['case'])} | {r['device']} | {_ms(r.get('base_s') or [])} | "
            f"{_ms(r.get('head_s') or [])} | {ratio} | {_cell(outcome)} | {claimed} | {rep} |"
        )
    return lines


def chart(row: dict) -> list[str]:
    base, head = (row.get("base_s") or [])[:MAX_POINTS], (row.get("head_s") or [])[:MAX_POINTS]
    if not base or not head:
        return []
    b, h = [x * 1e3 for x in base], [x * 1e3 for x in head]
    top = max(b + h) * 1.1
    fmt = lambda xs: "[" + ", ".join(f"{x:.4g}" for x in xs) + "]"  # noqa: E731
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{row["kernel"]} {row["case"]} ({row["device"]}): bars base, line head"',
        f'    x-axis "pair" [{", ".join(str(i + 1) for i in range(len(b)))}]',
        f'    y-axis "ms per call" 0 --> {top:.4g}',
        f"    bar {fmt(b)}",
        f"    line {fmt(h)}",
        "```",
    ]


def markdown(result: GateResult) -> str:
    status = result.status
    out = [f"## {ICON[status]} aina / gate: {WORD[status]}", ""]
    reasons = result.reasons()
    if reasons:
        out += [f"- {r}" for r in reasons] + [""]
    out += [
        f"`{result.base[:12]}` → `{result.head[:12]}` · policy `{result.policy.get('source')}` "
        f"(sha256 `{str(result.policy.get('sha256'))[:12]}`) · {result.wall_s:.1f} s",
        "",
        "| check | result | summary |",
        "| --- | --- | --- |",
    ]
    for c in result.checks:
        out.append(f"| {c.name} | {ICON[c.status]} {c.status} | {_cell(c.summary)} |")
    table = evidence_table(result)
    if table:
        out += ["", "### Evidence", ""] + table
        charts = [chart(r) for r in result.evidence if r.get("base_s")][:MAX_CHARTS]
        for lines in charts:
            if lines:
                out += [""] + lines
    detailed = [c for c in result.checks if c.details and c.status != SKIPPED]
    if detailed:
        out += ["", "<details><summary>Details</summary>", ""]
        for c in detailed:
            out += [f"**{c.name}**", ""] + [f"- {_cell(d)[:500]}" for d in c.details[:30]] + [""]
        out += ["</details>"]
    return "\n".join(out) + "\n"


def text(result: GateResult) -> str:
    lines = [f"aina gate: {WORD[result.status]} ({result.base[:12]} -> {result.head[:12]}, {result.wall_s:.1f} s)"]
    width = max((len(c.name) for c in result.checks), default=0)
    for c in result.checks:
        lines.append(f"  {c.name:<{width}}  {c.status:<14}  {c.summary}")
    return "\n".join(lines)
