"""``aina spec``: print the schema, check specs, and diff two sets of specs (the ratchet).

Exit codes: ``check`` 0 when every spec is valid, 1 when any is not; ``diff`` 0 when no
boundary was weakened, 1 when one was; both 2 on a usage error (a path or ref that does
not exist, nothing to check, specs that do not load for ``diff``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pytest_aina import imports
from pytest_aina.spec import schema
from pytest_aina.spec.model import discover, load_spec
from pytest_aina.spec.ratchet import SpecSetError, diff_specs, format_changes, load_spec_set, summary
from pytest_aina.spec.reader import SpecError, SpecIssue, format_path

USAGE_ERROR = 2


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "spec",
        help="check and compare kernel specs",
        description="Work with the YAML specs that state each kernel's boundaries.",
    )
    sub = parser.add_subparsers(dest="spec_command", metavar="SUBCOMMAND", required=True)

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the spec format",
        description="Print the JSON Schema (draft 2020-12) that every spec must satisfy.",
    )
    schema.set_defaults(run=run_schema)

    check = sub.add_parser(
        "check",
        help="validate spec files",
        description="Validate spec files: the schema, then the rules a schema cannot state, then that the "
        "implementation and reference can be found (without importing them). Every error is "
        "printed as FILE:LINE: KEY.PATH: what was expected. Exit 0 if all are valid, 1 if not.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        default=["specs"],
        metavar="PATH",
        help="spec files or folders searched for *.yaml/*.yml (default: specs)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    check.set_defaults(run=run_check)

    diff = sub.add_parser(
        "diff",
        help="list boundary changes between two sets of specs (the ratchet)",
        description="List every boundary change from BASE to HEAD as added/tightened, removed/weakened or "
        "changed (needs review). Exit 1 if any boundary was removed or weakened, 0 if not, "
        "2 on a usage error.",
        epilog="BASE and HEAD are each a folder of spec files, if one exists by that name, else a git ref of "
        "the repository in the current directory (e.g. 'aina spec diff origin/main HEAD', or "
        "'aina spec diff main specs' to compare the working tree).",
    )
    diff.add_argument("base", metavar="BASE", help="git ref or folder: the specs before")
    diff.add_argument("head", metavar="HEAD", help="git ref or folder: the specs after")
    diff.add_argument(
        "--specs",
        default="specs",
        metavar="DIR",
        help="folder of the specs inside the repository, for git refs (default: specs)",
    )
    diff.add_argument(
        "--repo",
        default=".",
        metavar="DIR",
        help="the git repository refs are read from (default: the current directory)",
    )
    diff.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    diff.set_defaults(run=run_diff)


def run_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema.text())
    return 0


def run_check(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        for p in missing:
            print(f"aina spec check: {p}: no such file or folder", file=sys.stderr)
        return USAGE_ERROR
    files = discover(args.paths)
    if not files:
        print(f"aina spec check: no spec files (*.yaml, *.yml) under {', '.join(args.paths)}", file=sys.stderr)
        return USAGE_ERROR

    results = []  # (file, name or None, issues)
    names: dict[str, str] = {}
    for file in files:
        try:
            spec = load_spec(file)
        except SpecError as exc:
            results.append((str(file), None, exc.issues))
            continue
        issues = []
        # Specs are keyed by name in reports and in the ratchet: two files, one name, is an error.
        if spec.name in names:
            issues.append(
                SpecIssue(
                    str(file),
                    ("name",),
                    spec.line_of("name"),
                    f"{spec.name!r} is also the name of {names[spec.name]}; expected one spec per name",
                )
            )
        else:
            names[spec.name] = str(file)
        for key in ("implementation", "reference"):
            why = imports.problem(getattr(spec, key), roots=(Path(file).parent,))
            if why:
                issues.append(
                    SpecIssue(
                        str(file),
                        (key,),
                        spec.line_of(key),
                        f"{getattr(spec, key)!r} cannot be found: {why}; expected module:attr "
                        "importable from the import path, the spec's folder or the current folder",
                    )
                )
        results.append((str(file), spec.name, issues))

    invalid = sum(1 for _, _, issues in results if issues)
    errors = sum(len(issues) for _, _, issues in results)
    ok = len(results) - invalid
    if args.json:
        doc = {
            "checked": len(results),
            "valid": ok,
            "invalid": invalid,
            "errors": errors,
            "files": [
                {
                    "file": f,
                    "name": n,
                    "valid": not issues,
                    "issues": [
                        {
                            "file": i.file,
                            "line": i.line,
                            "path": format_path(i.path),
                            "message": i.message,
                            "text": str(i),
                        }
                        for i in issues
                    ],
                }
                for f, n, issues in results
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        for _, _, issues in results:
            for issue in issues:
                print(issue)
        noun = "spec" if len(results) == 1 else "specs"
        tail = f", {invalid} invalid ({errors} error{'s' if errors != 1 else ''})" if invalid else ""
        print(f"{len(results)} {noun} checked: {ok} valid{tail}")
    return 1 if invalid else 0


def run_diff(args: argparse.Namespace) -> int:
    try:
        base = load_spec_set(args.base, specs=args.specs, repo=args.repo)
        head = load_spec_set(args.head, specs=args.specs, repo=args.repo)
    except SpecSetError as exc:
        print(f"aina spec diff: {exc}", file=sys.stderr)
        return USAGE_ERROR
    if not base and not head:
        print(
            f"aina spec diff: note: no spec files in {args.base} nor in {args.head} "
            f"(for git refs: looked in {args.specs}/, see --specs)",
            file=sys.stderr,
        )
    changes = diff_specs(base, head)
    totals = summary(changes)
    weakened = totals["weakenings"] > 0
    if args.json:
        doc = {
            "base": args.base,
            "head": args.head,
            "weakened": weakened,
            "summary": totals,
            "specs": {"base": len(base), "head": len(head)},
            "changes": [c.as_dict() for c in changes],
        }
        print(json.dumps(doc, indent=2))
    else:
        if changes:
            print(format_changes(changes))
        verdict = "boundaries weakened: needs a human's approval" if weakened else "no boundary weakened"
        print(
            f"{args.base} -> {args.head}: {totals['weakenings']} removed/weakened, "
            f"{totals['strengthenings']} added/tightened, {totals['neutral']} to review "
            f"({len(base)} -> {len(head)} specs): {verdict}"
        )
    return 1 if weakened else 0
