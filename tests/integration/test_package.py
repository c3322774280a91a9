"""The wheel as a user gets it from PyPI: built, installed alone into a fresh venv, run."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lfs_agent

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("lfs_agent-*.whl")
    return built


def test_the_wheel_carries_the_licence_and_type_marker(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert f"lfs_agent-{lfs_agent.__version__}.dist-info/licenses/LICENSE" in names
    assert "lfs_agent/py.typed" in names
    assert not [n for n in names if n.startswith("tests/")]
    metadata = zipfile.ZipFile(wheel).read(f"lfs_agent-{lfs_agent.__version__}.dist-info/METADATA")
    assert b"License-Expression: MIT" in metadata


def test_the_wheel_installed_alone_runs_without_any_cloud_sdk(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    shown = subprocess.run(
        [str(venv / "bin" / "lfs-agent"), "--version"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert lfs_agent.__version__ in shown.stdout
    # The extras stay extras: a folder or HTTP bucket needs no cloud SDK.
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import boto3"],
        check=False,
        capture_output=True,
        cwd=tmp_path,
    )
    assert probe.returncode != 0
