"""The README's newcomer path, step by step, with the console scripts a user has: a new
kernel in a new folder (``aina init``), its spec, ``pytest --aina path/to/spec.yaml``, a
broken mask caught with the argument and offset named, and the re-run command reproducing
exactly that failure. Also ``aina spec check`` on a spec naming what does not exist."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cwd, *argv, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


needs_scripts = pytest.mark.skipif(
    not (BIN / "aina").exists() or not (BIN / "pytest").exists(),
    reason="the aina and pytest console scripts are not installed next to Python",
)


@needs_scripts
@pytest.mark.slow
def test_the_readme_newcomer_path(tmp_path):
    init = run(tmp_path, "aina", "init", "my_silu", "--dir", "mykernels")
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "mykernels" / "my_silu.py").exists() and (tmp_path / "mykernels" / "my_silu.yaml").exists()
    assert run(tmp_path, "aina", "spec", "check", "mykernels").returncode == 0

    ok = run(tmp_path, "pytest", "--aina", "mykernels/my_silu.yaml", "-p", "no:cacheprovider")
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert not (tmp_path / ".hypothesis").exists() and not (tmp_path / ".benchmarks").exists()

    kernel = tmp_path / "mykernels" / "my_silu.py"
    source = kernel.read_text()
    assert "tl.load(x_ptr + offsets, mask=mask)" in source  # the README's step
    kernel.write_text(source.replace("tl.load(x_ptr + offsets, mask=mask)", "tl.load(x_ptr + offsets)"))
    broken = run(tmp_path, "pytest", "--aina", "mykernels/my_silu.yaml", "-p", "no:cacheprovider", "-x")
    text = broken.stdout
    assert broken.returncode == 1, text[-3000:]
    assert "my_silu: memory check failed" in text, text[-3000:]
    assert "out-of-bounds load in kernel _my_silu_kernel" in text
    argument, offset = re.search(r"argument '(\w+)' .* at element offset (-?\d+)", text).groups()
    assert argument == "x_ptr"
    rerun = shlex.split(re.search(r"re-run just this case:\n\s+(pytest .*)", text)[1])
    again = run(tmp_path, *rerun, "-p", "no:cacheprovider")
    assert again.returncode == 1
    assert "argument 'x_ptr'" in again.stdout and f"at element offset {offset}," in again.stdout
    # exactly that one failure (under CI pytest's summary repeats the message in full, so
    # count the failure headers, which start their line)
    assert len(re.findall(r"^my_silu: memory check failed", again.stdout, re.M)) == 1, again.stdout[-3000:]
    assert "1 failed" in again.stdout.splitlines()[-1]


@needs_scripts
def test_spec_check_reports_an_implementation_that_cannot_be_found(tmp_path):
    assert run(tmp_path, "aina", "init", "my_silu").returncode == 0
    spec = tmp_path / "my_silu.yaml"
    spec.write_text(
        spec.read_text()
        .replace("implementation: my_silu:my_silu", "implementation: my_silu:my_sliu")
        .replace("reference: my_silu:my_silu_reference", "reference: nowhere:my_silu_reference")
    )
    result = run(tmp_path, "aina", "spec", "check", "my_silu.yaml")
    assert result.returncode == 1
    assert (
        "my_silu.yaml:4: implementation: 'my_silu:my_sliu' cannot be found: my_silu defines no 'my_sliu'"
        in result.stdout
    ), result.stdout
    assert (
        "my_silu.yaml:5: reference: 'nowhere:my_silu_reference' cannot be found: module 'nowhere'" in result.stdout
    ), result.stdout


@needs_scripts
def test_the_console_script_imports_the_kernel_from_the_rootdir_and_says_when_it_cannot(tmp_path):
    assert run(tmp_path, "aina", "init", "my_silu").returncode == 0
    (tmp_path / "specs").mkdir()
    spec = (tmp_path / "my_silu.yaml").read_text()
    (tmp_path / "my_silu.yaml").unlink()
    (tmp_path / "specs" / "my_silu.yaml").write_text(spec.replace("my_silu:my_silu_reference", "nowhere:ref"))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = run(tmp_path, "pytest", "--aina", "-p", "no:cacheprovider", "-k", "example and 33")
    assert result.returncode == 1
    assert "specs/my_silu.yaml:5: reference 'nowhere:ref' cannot be imported" in result.stdout, result.stdout[-3000:]
    assert "no module named 'nowhere'" in result.stdout
