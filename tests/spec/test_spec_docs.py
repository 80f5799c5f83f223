"""docs/specs.md covers the whole format: every key and every invariant of the schema."""

import re
from pathlib import Path

from pytest_aina import invariants
from pytest_aina.spec.schema import schema

DOC = (Path(__file__).resolve().parents[2] / "docs" / "specs.md").read_text()


def test_every_top_level_key_has_a_section():
    headings = " ".join(re.findall(r"^### (.*)$", DOC, flags=re.M))
    missing = [k for k in schema()["properties"] if f"`{k}`" not in headings]
    assert not missing, f"docs/specs.md has no section for {missing}"


def test_every_invariant_is_in_the_library_table():
    branches = schema()["$defs"]["invariant"]["oneOf"]
    names = [n for b in branches for n in b.get("enum", [])] + [n for b in branches for n in b.get("properties", {})]
    missing = [n for n in names if f"| `{n}` |" not in DOC]
    assert not missing, f"docs/specs.md does not document invariants {missing}"
    assert sorted(names) == sorted(invariants.REGISTRY), "the schema lists exactly the registry's invariants"


def test_every_input_and_example_key_is_documented():
    defs = schema()["$defs"]
    for section in ("input", "case", "bench_case"):
        for key in defs[section]["properties"]:
            assert f"`{key}`" in DOC, f"{section} key {key!r} is not documented"
