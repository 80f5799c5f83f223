"""Reversible attribute and item replacement: what install/uninstall and each launch undo."""

from __future__ import annotations

_MISSING = object()


class Patches:
    """Replacements made in order and undone in reverse, so nested patches of the same
    attribute unwind to the original. A class attribute is saved from the class's own
    ``__dict__`` (not through ``getattr``), so a staticmethod or a lambda comes back as it was."""

    def __init__(self) -> None:
        self._undo: list[tuple[object, object, object, bool]] = []

    def setattr(self, target: object, name: str, value: object) -> None:
        owned = vars(target) if isinstance(target, type) else None
        if owned is not None:
            original = owned.get(name, _MISSING)
        else:
            original = getattr(target, name, _MISSING)
        self._undo.append((target, name, original, False))
        setattr(target, name, value)

    def setitem(self, mapping: dict, key: str, value: object) -> None:
        self._undo.append((mapping, key, mapping.get(key, _MISSING), True))
        mapping[key] = value

    def restore(self) -> None:
        while self._undo:
            target, name, original, is_item = self._undo.pop()
            if is_item:
                if original is _MISSING:
                    target.pop(name, None)
                else:
                    target[name] = original
            elif original is _MISSING:
                delattr(target, name)
            else:
                setattr(target, name, original)

    def __bool__(self) -> bool:
        return bool(self._undo)
