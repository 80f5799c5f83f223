"""`aina spec diff` over git refs: specs read as committed, in a real repository."""

import subprocess

import pytest
from spec_samples import VALID, variant

from pytest_aina.cli import main
from pytest_aina.spec.ratchet import REMOVED, WEAKENED, SpecSetError, diff_specs, load_spec_set


def git(repo, *args) -> str:
    return subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path):
    """A repository with two commits: `base` (tagged) and `main`, which loosens a tolerance,
    drops an invariant and adds a spec; the working tree also deletes a pinned example."""
    git(tmp_path, "init", "-q", "-b", "main")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "softmax.yaml").write_text(VALID)
    (tmp_path / "README").write_text("not a spec\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "base")
    git(tmp_path, "tag", "base")
    (specs / "softmax.yaml").write_text(
        variant("float16: {atol: 1e-3", "float16: {atol: 1e-2").replace("  - non_negative\n", "")
    )
    (specs / "deep").mkdir()
    (specs / "deep" / "rms_norm.yml").write_text(variant("name: softmax", "name: rms_norm"))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "head")
    text = (specs / "softmax.yaml").read_text()
    (specs / "softmax.yaml").write_text(
        text.replace("  - {dims: {M: 4096, N: 50304}, dtype: float16}\n  - {dims: {M: 3", "  - {dims: {M: 3")
    )
    return tmp_path


def test_refs_are_read_as_committed(repo):
    base = load_spec_set("base", repo=repo)
    head = load_spec_set("main", repo=repo)
    assert sorted(head) == ["rms_norm", "softmax"]
    assert str(head["softmax"].path) == "main:specs/softmax.yaml"
    got = {(c.spec, c.kind, c.path) for c in diff_specs(base, head)}
    assert got == {
        ("softmax", WEAKENED, "tolerance.float16.atol"),
        ("softmax", REMOVED, "invariants[non_negative]"),
        ("rms_norm", "added", "<spec>"),
    }


def test_cli_between_refs_in_the_current_directory(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    assert main(["spec", "diff", "HEAD~1", "HEAD"]) == 1
    out = capsys.readouterr().out
    assert "weakened   tolerance.float16.atol" in out and "[HEAD:specs/softmax.yaml:14]" in out
    assert "[HEAD~1:specs/softmax.yaml:20]" in out  # the dropped invariant, where it was


def test_ref_against_the_working_tree_folder(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    assert main(["spec", "diff", "main", "specs"]) == 1
    out = capsys.readouterr().out
    assert "examples[M=4096,N=50304,float16]" in out and "pinned example deleted" in out


def test_unchanged_refs_exit_0(repo, capsys):
    assert main(["spec", "diff", "--repo", str(repo), "base", "base"]) == 0
    assert capsys.readouterr().out.endswith("no boundary weakened\n")


def test_a_ref_before_any_spec_existed_means_all_added(repo, capsys):
    empty_tree = git(repo, "hash-object", "-t", "tree", "/dev/null").strip()
    git(repo, "branch", "empty", git(repo, "commit-tree", empty_tree, "-m", "nothing").strip())
    assert main(["spec", "diff", "--repo", str(repo), "empty", "main"]) == 0
    assert main(["spec", "diff", "--repo", str(repo), "main", "empty"]) == 1
    assert "spec removed" in capsys.readouterr().out


def test_specs_folder_is_configurable(repo, capsys):
    git(repo, "mv", "specs", "kernel_specs")
    git(repo, "commit", "-q", "-m", "move")
    # HEAD~1 has no kernel_specs/ (nothing then), HEAD has both specs there.
    assert main(["spec", "diff", "--repo", str(repo), "--specs", "kernel_specs", "HEAD~1", "HEAD"]) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("HEAD~1 -> HEAD: 0 removed/weakened, 2 added/tightened, 0 to review (0 -> 2 specs)")
    )
    # With the default specs/, the move reads as both specs removed.
    assert main(["spec", "diff", "--repo", str(repo), "HEAD~1", "HEAD"]) == 1
    assert "(2 -> 0 specs)" in capsys.readouterr().out


def test_bad_ref_is_a_usage_error(repo, capsys):
    assert main(["spec", "diff", "--repo", str(repo), "no-such-branch", "main"]) == 2
    err = capsys.readouterr().err
    assert "'no-such-branch' is neither a folder nor a git ref in the git repository at" in err
    with pytest.raises(SpecSetError, match="neither a folder nor a git ref"):
        load_spec_set("--output=x", repo=repo)


def test_outside_a_repository_says_so(tmp_path, capsys):
    assert main(["spec", "diff", "--repo", str(tmp_path), "main", "HEAD"]) == 2
    assert "(not a git repository)" in capsys.readouterr().err


def test_a_spec_that_does_not_load_at_a_ref_names_ref_and_file(repo, capsys):
    (repo / "specs" / "broken.yaml").write_text("name: [\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "broken")
    assert main(["spec", "diff", "--repo", str(repo), "main~1", "main"]) == 2
    err = capsys.readouterr().err
    assert "specs at main do not load:" in err
    assert "main:specs/broken.yaml:2: <top>: not valid YAML" in err


def test_every_file_at_a_ref_is_read_and_bad_bytes_are_named(repo, capsys):
    (repo / "specs" / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    (repo / "specs" / "a b.yaml").write_text(variant("name: softmax", "name: spaced"))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "odd files")
    with pytest.raises(SpecSetError) as info:
        load_spec_set("HEAD", repo=repo)
    assert [str(i) for i in info.value.issues] == ["HEAD:specs/latin1.yaml: <top>: not UTF-8 text"]
    (repo / "specs" / "latin1.yaml").unlink()
    git(repo, "commit", "-q", "-am", "drop it")
    assert sorted(load_spec_set("HEAD", repo=repo)) == ["rms_norm", "softmax", "spaced"]
