"""Hook shims: the committed copies match the templates, and a shim explains itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lfs_agent.hooks import HOOK_NAMES, MARKER, render_hook

ROOT = Path(__file__).resolve().parents[2]


def test_committed_hooks_match_the_templates():
    for name in HOOK_NAMES:
        path = ROOT / "hooks" / name
        assert path.read_text() == render_hook(name, None), "run scripts/render-hooks"
        assert path.stat().st_mode & 0o111


def test_a_shim_without_lfs_agent_says_what_to_do(tmp_path: Path):
    hook = tmp_path / "pre-push"
    hook.write_text(render_hook("pre-push", "/nonexistent/python"))
    hook.chmod(0o755)
    proc = subprocess.run(
        [str(hook), "origin", "url"],
        input=b"",
        capture_output=True,
        env={"PATH": "/nonexistent"},
        check=False,
    )
    assert proc.returncode == 2
    assert b"set up for lfs-agent, but it was not found" in proc.stderr
    assert MARKER in hook.read_text()
