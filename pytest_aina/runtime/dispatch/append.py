"""Extending a dispatch table, and taking a variant out of one: the Changer's API.

A change appends one variant to a table that a reviewer then reads in the diff, so the file's
own text and comments stay as they were and the new entry is written in the file's block
style, below the last one. A revert or a retirement takes one out the same way (the comment
lines directly above it go with it; the generic variant never does). Nothing is written unless
the whole new table reads cleanly.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from pytest_aina.runtime.dispatch.reader import DispatchTableError, compose, parse_table
from pytest_aina.runtime.dispatch.variants import Table


def add_variant(path: str | Path, entry: dict, *, comment: str | None = None) -> Table:
    """Append ``entry`` (a variant as plain data: name, function, config, domain, evidence)
    to the table at ``path``, keeping the file's text and comments, and return the new
    table. The result is checked before anything is written, and written atomically:
    an entry that would make the table invalid raises :class:`DispatchTableError` and
    leaves the file as it was. ``comment`` goes above the entry as ``# ...`` lines.
    """
    path = Path(path)
    text = path.read_text()
    _, _, root = compose(text, str(path))
    seq = (
        next((v for k, v in root.value if k.value == "variants"), None) if isinstance(root, yaml.MappingNode) else None
    )
    if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
        raise DispatchTableError([f"{path}: variants: must be a non-empty block list ('- name: ...') to append to"])
    last = seq.value[-1]
    indent = " " * last.start_mark.column  # column of the item's first key, after "- "
    dash = " " * (last.start_mark.column - 2)
    # the end of the last item is the end of its last scalar; insert after that line
    end = _last_scalar_end(last)
    cut = text.find("\n", end.index)
    cut = len(text) if cut < 0 else cut + 1
    body = yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=120).rstrip("\n").splitlines()
    block = [f"{dash}# {c}" for c in (comment.splitlines() if comment else [])]
    block += [f"{dash}- {body[0]}"] + [f"{indent}{line}" for line in body[1:]]
    head = text[:cut] if text[:cut].endswith("\n") else text[:cut] + "\n"
    new_text = head + "\n".join(block) + "\n" + text[cut:]
    table = parse_table(new_text, str(path), kernel=path.stem)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new_text)
    os.replace(tmp, path)
    return table


def without_variant(text: str, name: str, file: str) -> str:
    """The table ``text`` with variant ``name`` taken out, the rest of its text and comments
    as they were; the entry's own comment lines (directly above it) go with it. Raises
    :class:`DispatchTableError` when the table has no such variant, when ``name`` is the
    generic variant (it serves every call no other variant does: it always remains), or
    when the table would not read cleanly without it."""
    table = parse_table(text, file)
    variant = table.get(name)
    if variant is None:
        raise DispatchTableError([f"{file}: no variant named {name!r} to remove"])
    if variant.is_generic:
        raise DispatchTableError([f"{file}: {name!r} is the generic variant: it always remains"])
    _, _, root = compose(text, file)
    seq = next(v for k, v in root.value if k.value == "variants")
    if seq.flow_style:
        raise DispatchTableError([f"{file}: variants: must be a block list ('- name: ...') to remove from"])
    items = seq.value
    i = next(
        i
        for i, item in enumerate(items)
        if isinstance(item, yaml.MappingNode) and any(k.value == "name" and v.value == name for k, v in item.value)
    )
    lines = text.splitlines(keepends=True)
    # the item starts at its dash (two columns left of its first key), on its first line
    first = items[i].start_mark.line
    while first > 0 and lines[first - 1].lstrip().startswith("#") and not _is_header(lines, first - 1, seq):
        first -= 1
    if first > 0 and not lines[first - 1].strip():
        first -= 1  # the blank line that set it apart
    last = _last_scalar_end(items[i]).line  # the line of the item's last scalar
    if i + 1 < len(items):
        last = max(last, items[i + 1].start_mark.line - 1)
        # the next item's own comments stay with it
        while last > first and lines[last].lstrip().startswith("#"):
            last -= 1
    new_text = "".join(lines[:first] + lines[last + 1 :])
    parse_table(new_text, file)
    return new_text


def _is_header(lines: list[str], line: int, seq) -> bool:
    """Whether comment ``line`` sits above the whole list (the file's header), not one item."""
    return line < seq.start_mark.line


def _last_scalar_end(node):
    if isinstance(node, yaml.ScalarNode):
        return node.end_mark
    if isinstance(node, yaml.MappingNode):
        children = [c for kv in node.value for c in kv]
    else:
        children = node.value
    if node.flow_style or not children:
        return node.end_mark
    return max((_last_scalar_end(c) for c in children), key=lambda m: m.index)
