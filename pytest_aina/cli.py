"""The ``aina`` command line.

Subcommands live one per module in :mod:`pytest_aina.commands`; each module defines
``register(subparsers)`` and does its heavy imports inside the function it runs, so
``aina --help`` stays fast. Other packages (the GitHub App's ``aina serve``) add
subcommands through the ``aina.commands`` entry-point group, which keeps dependencies
pointing one way: the core never imports them.
"""

from __future__ import annotations

import argparse
import pkgutil
import sys
from importlib import import_module
from importlib.metadata import entry_points

from pytest_aina import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aina",
        description="pytest-aina: kernels that evolve themselves, safely.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        import_module(f"{commands.__name__}.{info.name}").register(sub)
    for ep in entry_points(group="aina.commands"):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("aina: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
