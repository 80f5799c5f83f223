"""Variant dispatch: which function serves a call, decided by a table that is data.

Each kernel has a table, ``kernels/variants/<kernel>.yaml``, that a reviewer reads and a change
extends. One module per job:

* :mod:`.variants` — :class:`Variant` and :class:`Table`, and the rule that chooses the most
  specific variant for a call;
* :mod:`.reader` — the file format: :func:`parse_table`, :func:`load_table`,
  :func:`validate_table`, every problem reported as ``file:line: key: message``;
* :mod:`.append` — :func:`add_variant` and :func:`without_variant`, the Changer's way to extend
  a table and to take a variant out of it (a revert, a retirement), comments kept;
* :mod:`.routing` — :func:`dispatcher`, which serves a kernel's calls: the route cache, the
  ``AINA_DISPATCH_PIN`` rollback switch, timing and the hand-off to the recorder.

Production code imports this and the recorder, nothing else of pytest-aina (stdlib and PyYAML
at import). The Reasoner and the App read tables with it too, so reading a repository's
tables never runs that repository's code.
"""

from pytest_aina.runtime.device import describe_device as device_info
from pytest_aina.runtime.dispatch.append import add_variant, without_variant
from pytest_aina.runtime.dispatch.reader import (
    DTYPES,
    TABLE_VERSION,
    DispatchTableError,
    load_table,
    parse_table,
    validate_table,
)
from pytest_aina.runtime.dispatch.routing import Dispatcher, Route, default_table_path, dispatcher
from pytest_aina.runtime.dispatch.variants import Table, Variant

__all__ = [
    "DTYPES",
    "TABLE_VERSION",
    "DispatchTableError",
    "Dispatcher",
    "Route",
    "Table",
    "Variant",
    "add_variant",
    "without_variant",
    "default_table_path",
    "device_info",
    "dispatcher",
    "load_table",
    "parse_table",
    "validate_table",
]
