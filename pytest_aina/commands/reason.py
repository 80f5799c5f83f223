"""``aina reason``: from telemetry to ranked hypotheses of what is worth improving.

Exit codes: 0 when the telemetry was read (whatever was found, and even when some windows
were refused: they are reported and skipped), 2 when it cannot be read at all.
"""

from __future__ import annotations

import argparse
import sys

USAGE_ERROR = 2


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "reason",
        help="find where kernel improvements are worth the most, from telemetry",
        description="Read telemetry windows, build the workload profile, and print ranked hypotheses: kernels "
        "far from their roofline, hot shape domains no variant is specialised for, shifts in the "
        "shape mix, variants slower than the evidence they were merged with (rollback) and "
        "variants nobody calls (retire). Hypotheses over one domain are merged; every gain is in "
        "GPU-seconds per day with its share of the fleet; a hot kernel without a hypothesis is "
        "listed with the reasons it was left alone. Bad windows are reported with their line and skipped.",
    )
    p.add_argument("--telemetry", required=True, metavar="FILE", help="telemetry windows, one JSON object per line")
    p.add_argument(
        "--json",
        nargs="?",
        const="hypotheses",
        choices=("hypotheses", "report"),
        metavar="WHAT",
        help="print JSON instead of a table: 'hypotheses' (the default) a list of hypotheses (id, kind, "
        "kernel, variant, domain, title, expected_gain, expected_gain_unit, expected_gain_share, gain_basis, "
        "evidence); 'report' an object with those hypotheses, the hot kernels left alone and why "
        "(left_alone), and the fleet's GPU-s/day",
    )
    p.add_argument(
        "--specs",
        default="specs",
        metavar="DIR",
        help="the kernels' specs, for their bytes/FLOPs models (default: specs)",
    )
    p.add_argument(
        "--variants",
        default="kernels/variants",
        metavar="DIR",
        help="the kernels' dispatch tables (default: kernels/variants)",
    )
    p.add_argument(
        "--devices",
        metavar="FILE",
        help="device limits overriding the shipped table (same JSON format; default: $AINA_DEVICES)",
    )
    p.add_argument(
        "--min-share",
        type=_fraction,
        metavar="F",
        help="share of GPU time a shape domain needs to count as hot (default: 0.05)",
    )
    p.add_argument(
        "--max-issues",
        type=int,
        default=20,
        metavar="N",
        help="refused windows listed in the table output; 0 lists all (default: 20)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from pytest_aina.devices import DeviceTableError
    from pytest_aina.reasoner import ReasonerConfig, reason_about_file
    from pytest_aina.reasoner.render import render
    from pytest_aina.telemetry.validate import TelemetryError

    config = ReasonerConfig()
    if args.min_share is not None:
        config = dataclasses.replace(config, min_domain_share=args.min_share)
    try:
        report = reason_about_file(
            args.telemetry, specs=args.specs, variants=args.variants, devices=args.devices, config=config
        )
    except (TelemetryError, DeviceTableError) as exc:
        print(f"aina reason: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if args.json:
        for issue in report.issues:
            print(f"refused: {issue}", file=sys.stderr)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps(report.report_json() if args.json == "report" else report.as_json(), indent=2))
    else:
        print(render(report, args.telemetry, max_issues=args.max_issues))
    return 0
