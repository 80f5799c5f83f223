"""Extending a dispatch table: the Changer's API.

A change appends one variant to a table that a reviewer then reads in the diff, so the file's
own text and comments stay as they were and the new entry is written in the file's block
style, below the last one. Nothing is written unless the whole new table reads cleanly.
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
