"""A change that takes a variant out (a revert, a retirement): the table loses the variant and
keeps the rest, the generated tests go, the spec's pinned examples stay, and its provenance
passes the one provenance check like any change's."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_aina.changer.change import ChangeError, verify
from pytest_aina.changer.change.removal import removal_change
from pytest_aina.runtime.dispatch import add_variant, parse_table

ROOT = Path(__file__).resolve().parents[2]
BASE = "a" * 40


def table_with(tmp_path, *names: str) -> str:
    path = tmp_path / "softmax.yaml"
    path.write_text((ROOT / "kernels/variants/softmax.yaml").read_text())
    for i, name in enumerate(names):
        add_variant(
            path,
            {
                "name": name,
                "function": "kernels.softmax:softmax_generic",
                "domain": {"dims": {"N": [1 + 100 * i, 50 + 100 * i]}},
            },
            comment=f"added by aina: {name}",
        )
    return path.read_text()


def test_a_revert_removes_the_variant_and_its_tests_and_keeps_the_rest(tmp_path):
    text = table_with(tmp_path, "softmax_a", "softmax_b")
    present = {"kernels/variants/softmax.yaml", "tests/evolved/test_softmax_a.py", "tests/evolved/test_softmax_b.py",
               "specs/softmax.yaml"}  # fmt: skip
    change = removal_change(
        kind="rollback",
        kernel="softmax",
        variant="softmax_a",
        base=BASE,
        table_text=text,
        present=present,
        title="softmax: revert softmax_a",
        body="Reverts #2.\n",
        evidence={"reverts": 2},
        telemetry=b'["telemetry_windows#1"]',
        metadata={"reverts": 2},
    )
    table = parse_table(change.files["kernels/variants/softmax.yaml"], "softmax.yaml")
    assert [v.name for v in table.variants] == ["generic", "softmax_b"]
    assert change.files["tests/evolved/test_softmax_a.py"] is None
    assert "tests/evolved/test_softmax_b.py" not in change.files and "specs/softmax.yaml" not in change.files
    assert "kernels/evolved/softmax_a.py" not in change.files  # not there: nothing to delete
    assert change.labels == ("aina", "kernel:softmax", "aina:rollback")
    assert change.metadata == {"kind": "rollback", "variant": "softmax_a", "reverts": 2}
    h = change.hypothesis
    assert (h.kind, h.kernel, h.variant) == ("rollback", "softmax", "softmax_a")
    # the same revert again has the same id and branch: one PR per contradiction
    again = removal_change(kind="rollback", kernel="softmax", variant="softmax_a", base="b" * 40, table_text=text,
                           present=present, title="other", body="", evidence={}, telemetry=b"")  # fmt: skip
    assert (again.hypothesis_id, again.branch) == (change.hypothesis_id, change.branch)
    # the one provenance check passes on what the change writes
    assert verify(dict(change.files), attestation=change.attestation, base=BASE) == []


def test_the_generic_variant_or_a_missing_one_cannot_be_removed(tmp_path):
    text = table_with(tmp_path, "softmax_a")
    args = {"kernel": "softmax", "base": BASE, "table_text": text, "present": set(), "title": "t", "body": "",
            "evidence": {}, "telemetry": b""}  # fmt: skip
    with pytest.raises(ChangeError, match="generic variant: it always remains"):
        removal_change(kind="retire", variant="generic", **args)
    with pytest.raises(ChangeError, match="no variant named 'softmax_z'"):
        removal_change(kind="retire", variant="softmax_z", **args)
    with pytest.raises(ChangeError, match="a removal is one of"):
        removal_change(kind="delete", variant="softmax_a", **args)
