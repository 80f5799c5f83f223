"""``aina telemetry``: check telemetry files, print the telemetry schema.

Exit codes: ``check`` 0 when every window of every file is valid, 1 when any is not, 2 when
a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "telemetry",
        help="check telemetry files; print the telemetry schema",
        description="Work with telemetry windows: what production reports about its kernels.",
    )
    sub = parser.add_subparsers(dest="telemetry_command", metavar="SUBCOMMAND", required=True)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of a telemetry window",
        description="Print the JSON Schema (draft 2020-12) of one telemetry window; an HTTP batch is its $defs/batch.",
    )
    schema.set_defaults(run=run_schema)

    check = sub.add_parser(
        "check",
        help="validate JSONL telemetry files",
        description="Validate telemetry files, one window per line: the schema, then the rules "
        "a schema cannot state (end after start, quantiles in order, mean latency "
        "between min and max). Every error is printed as FILE:LINE: KEY.PATH: "
        "message. Exit 0 if all are valid, 1 if not, 2 if a file cannot be read.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="JSONL telemetry files")
    check.add_argument(
        "--max-issues",
        type=int,
        default=0,
        metavar="N",
        help="print at most N issues per file (default: 0, all of them)",
    )
    check.set_defaults(run=run_check)


def run_schema(args: argparse.Namespace) -> int:
    import json

    from pytest_aina.telemetry.validate import schema

    print(json.dumps(schema(), indent=2))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from pytest_aina.telemetry.validate import TelemetryError, read_file

    status = 0
    for f in args.files:
        try:
            windows, issues = read_file(f)
        except TelemetryError as exc:
            print(f"aina telemetry check: {exc}", file=sys.stderr)
            status = USAGE_ERROR
            continue
        shown = issues if args.max_issues <= 0 else issues[: args.max_issues]
        for issue in shown:
            print(issue)
        if len(shown) < len(issues):
            print(f"{f}: ... and {len(issues) - len(shown)} more issue(s)")
        bad = len({i.line for i in issues})
        print(f"{f}: {len(windows)} valid window(s), {bad} invalid line(s)")
        if issues and status == 0:
            status = 1
    return status
