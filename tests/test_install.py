"""scripts/link_threestudio.sh (what install.sh runs when THREESTUDIO_ROOT is set)."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "link_threestudio.sh"


def _fake_threestudio(root: Path) -> Path:
    (root / "threestudio").mkdir(parents=True)
    (root / "launch.py").write_text("# stand-in\n")
    return root


def _link(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), str(root)], capture_output=True, text=True)


def test_links_extension_and_assets_and_is_idempotent(tmp_path):
    root = _fake_threestudio(tmp_path / "ts")
    for _ in range(2):
        out = _link(root)
        assert out.returncode == 0, out.stderr
    ext = root / "custom" / "gaussianip"
    assert ext.is_symlink() and ext.resolve() == (REPO / "custom" / "gaussianip").resolve()
    for asset in (REPO / "load").iterdir():
        if asset.is_dir():
            assert (root / "load" / asset.name).resolve() == asset.resolve()


def test_never_replaces_a_users_folder(tmp_path):
    root = _fake_threestudio(tmp_path / "ts")
    mine = root / "custom" / "gaussianip"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    out = _link(root)
    assert out.returncode == 0
    assert "left it alone" in out.stdout
    assert (mine / "notes.txt").read_text() == "keep me" and not mine.is_symlink()


def test_rejects_a_folder_that_is_not_threestudio(tmp_path):
    out = _link(tmp_path)
    assert out.returncode == 2 and "launch.py" in out.stderr
    out = _link(tmp_path / "missing")
    assert out.returncode == 2 and "not a folder" in out.stderr
