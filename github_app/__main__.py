"""``python -m github_app serve ...``: the same command as ``aina serve``, for hosts (and
containers) where only the App is installed."""

from __future__ import annotations

import argparse
import sys

from github_app import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m github_app")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli.register(sub)
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
