"""``aina gate``: the merge gate's verdict on a change, with every reason.

Exit codes: 0 pass, 1 fail, 2 needs a human or more evidence, 3 configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "gate",
        help="decide whether a change may merge (the merge gate)",
        description="Judge HEAD against BASE: scope, the spec ratchet (with approvals), provenance, policy, "
        "correctness, coverage, performance (base and head interleaved in the sandbox) and the claims "
        "of a bot's attestation. Exit 0 pass, 1 fail, 2 needs a human or more evidence, 3 "
        "configuration error.",
        epilog='In GitHub Actions: annotations go to stdout, --summary "$GITHUB_STEP_SUMMARY" appends the '
        "Markdown verdict. docs/gate.md explains each check and the policy keys (.github/aina.yml).",
    )
    parser.add_argument("--base", required=True, metavar="REF", help="the branch or commit the change merges into")
    parser.add_argument("--head", required=True, metavar="REF", help="the change's commit")
    parser.add_argument("--repo", default=".", metavar="DIR", help="the git repository (default: .)")
    parser.add_argument(
        "--reports",
        metavar="DIR",
        help="folder of JSON reports of other jobs (e.g. the GPU runner's aina gate --measure-only)",
    )
    parser.add_argument(
        "--approvals",
        metavar="FILE",
        help="JSON of weakening approvals and reviews collected from the pull request (docs/gate.md)",
    )
    parser.add_argument(
        "--branch", metavar="NAME", help="the head branch's name, for bot changes (default: $GITHUB_HEAD_REF)"
    )
    parser.add_argument(
        "--specs", default="specs", metavar="DIR", help="the specs folder in the repository (default: specs)"
    )
    parser.add_argument("--json", dest="json_file", metavar="FILE", help="write the verdict as JSON")
    parser.add_argument("--summary", metavar="FILE", help="append the Markdown verdict (e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--vsa", metavar="FILE", help="write the verdict as an in-toto SLSA verification summary")
    parser.add_argument(
        "--budget-s",
        type=float,
        metavar="S",
        help="time budget of the performance measurement (default: the policy's gate.budget_s)",
    )
    parser.add_argument(
        "--measure-only", action="store_true", help="only scope and performance: a report for another job's --reports"
    )
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing check")
    parser.add_argument(
        "--annotations",
        choices=("auto", "github", "plain", "none"),
        default="auto",
        help="how findings at a file's line are printed: GitHub workflow commands, file:line "
        "text, or not at all (default auto: github in GitHub Actions, else plain)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pytest_aina.gate import CONFIG_ERROR, GateConfigError, GateOptions, as_json, report, run_gate, vsa

    opts = GateOptions(
        base=args.base,
        head=args.head,
        repo=args.repo,
        reports=args.reports,
        approvals=args.approvals,
        branch=args.branch,
        specs=args.specs,
        measure_only=args.measure_only,
        budget_s=args.budget_s,
        fail_fast=args.fail_fast,
    )
    try:
        result = run_gate(opts)
    except GateConfigError as exc:
        print(f"aina gate: configuration error: {exc}", file=sys.stderr)
        return CONFIG_ERROR
    style = args.annotations
    if style == "auto":
        style = "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "plain"
    if style != "none":
        for a in result.annotations:
            print(a.github() if style == "github" else a.plain())
    print(report.text(result))
    for reason in result.reasons():
        print(f"  - {reason}")
    repository = (
        os.environ.get("GITHUB_SERVER_URL", "https://github.com") + "/" + os.environ["GITHUB_REPOSITORY"]
        if os.environ.get("GITHUB_REPOSITORY")
        else None
    )
    if args.json_file:
        with open(args.json_file, "w") as fh:
            json.dump(as_json(result, repository=repository), fh, indent=2, default=str)
            fh.write("\n")
    if args.vsa:
        with open(args.vsa, "w") as fh:
            json.dump(vsa.statement(result, repository=repository), fh, indent=2)
            fh.write("\n")
    if args.summary:
        with open(args.summary, "a") as fh:
            fh.write(report.markdown(result))
    return result.exit_code
