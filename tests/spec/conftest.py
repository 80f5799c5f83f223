"""A valid spec to start from, and helpers that write variants of it."""

from pathlib import Path

import pytest
from spec_samples import VALID, variant  # noqa: F401  (re-exported for fixtures)


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(text: str, name: str = "softmax.yaml", folder: str = "specs") -> Path:
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write
