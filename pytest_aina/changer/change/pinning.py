"""The spec's pinned examples: the hot shapes a change specialised for, appended as text.

The spec is edited as text, not re-dumped, so its comments and formatting stay as its
authors wrote them; the result must load, and ``aina spec diff`` must call every change
*added* (the ratchet: the system may add boundaries, never remove or weaken one).
"""

from __future__ import annotations

import yaml

from pytest_aina.changer.change.model import ChangeError
from pytest_aina.changer.change.testgen import Shape
from pytest_aina.spec.model import Spec, parse_spec
from pytest_aina.spec.ratchet import ADDED, diff_specs
from pytest_aina.spec.reader import SpecError


def pin_examples(text: str, file: str, spec: Spec, hot: list[Shape], hid: str):
    """Append each hot shape not pinned yet to the spec's ``examples`` (text edit, comments
    and formatting kept). Returns (new text, added, already pinned, spec diff changes);
    raises :class:`ChangeError` if the result does not load or is anything but additions."""
    added, already = [], []
    for s in hot:
        pinned = any(
            ex.dim_map == s.dims
            and ex.dtype == s.dtype
            and ex.layout == "contiguous"
            and ex.values == "normal"
            and not ex.batch
            for ex in spec.examples
        )
        (already if pinned else added).append({"dims": dict(s.dims), "dtype": s.dtype})
    if not added:
        return text, added, already, []
    items = [
        yaml.safe_dump(
            {"dims": e["dims"], "dtype": e["dtype"], "note": f"hot shape in production telemetry (hypothesis {hid})"},
            default_flow_style=True,
            width=10**6,
            sort_keys=False,
        ).strip()
        for e in added
    ]
    comment = f"pinned by pytest-aina: the shapes hypothesis {hid} specialised a variant for"
    new_text = append_to_list(text, "examples", items, comment, file)
    try:
        new_spec = parse_spec(new_text, file)
    except SpecError as exc:
        raise ChangeError(f"{file}: adding the hot shapes as examples makes the spec invalid:\n{exc}") from None
    changes = diff_specs({spec.name: spec}, {new_spec.name: new_spec})
    wrong = [c for c in changes if c.kind != ADDED]
    if wrong:
        raise ChangeError(
            f"{file}: the spec change must only add pinned examples, but `aina spec diff` finds: "
            + "; ".join(f"{c.kind} {c.path}: {c.message}" for c in wrong)
        )
    if len(changes) != len(added):
        raise ChangeError(
            f"{file}: {len(added)} example(s) appended but `aina spec diff` sees {len(changes)} "
            "added; the text edit went wrong"
        )
    return new_text, added, already, changes


def append_to_list(text: str, key: str, items: list[str], comment: str, file: str) -> str:
    """Append flow-style ``items`` to the top-level list ``key`` of a YAML document's text."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise ChangeError(f"{file}: not valid YAML: {exc.problem}") from None
    finally:
        loader.dispose()
    if not isinstance(root, yaml.MappingNode):
        raise ChangeError(f"{file}: expected a mapping at the top")
    node = next((v for k, v in root.value if k.value == key), None)
    if node is None:  # no list yet: a new block at the end
        head = text if text.endswith("\n") or not text else text + "\n"
        return head + f"# {comment}\n{key}:\n" + "".join(f"  - {i}\n" for i in items)
    if not isinstance(node, yaml.SequenceNode):
        raise ChangeError(f"{file}: {key} must be a list to append to")
    if node.flow_style:
        # [..] or []: add before the closing bracket
        end = node.end_mark.index - 1
        sep = ", " if node.value else ""
        return text[:end] + sep + ", ".join(items) + text[end:]
    last = node.value[-1]
    dash = " " * node.start_mark.column
    end = _node_end(last)
    cut = text.find("\n", end)
    cut = len(text) if cut < 0 else cut + 1
    head = text[:cut] if text[:cut].endswith("\n") else text[:cut] + "\n"
    block = f"{dash}# {comment}\n" + "".join(f"{dash}- {i}\n" for i in items)
    return head + block + text[cut:]


def _node_end(node) -> int:
    """Index just past the last character of a node's own text (a block node's end mark
    runs on to the next token, past comments; its last scalar's does not)."""
    if isinstance(node, yaml.ScalarNode) or node.flow_style:
        return node.end_mark.index
    children = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) else node.value
    return max((_node_end(c) for c in children), default=node.end_mark.index)
