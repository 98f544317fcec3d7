"""The wheel's only top-level package is ``reelfork``, it carries every module and data file, and the
development install is an editable one that imports from the working tree."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import sysconfig
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import reelfork.server

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"narrative": "narrative", "generation": "generation", "server": "server", "client-demo": "client_demo"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("reelfork-*.whl")
    return zipfile.ZipFile(built)


def test_the_only_top_level_package_is_reelfork(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"reelfork"}


def test_the_wheel_carries_every_module_and_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = set()
    for folder, package in FOLDERS.items():
        tracked = subprocess.run(
            ["git", "ls-files", folder], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.split()
        for path in tracked:
            relative = Path(path).relative_to(folder)
            if relative.parts[0] in {"premises"}:  # examples for the README, not package data
                continue
            expected.add(f"reelfork/{package}/{relative.as_posix()}")
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "reelfork/narrative/stories/last-ferry.yaml" in names
    assert "reelfork/client_demo/index.html" in names


def test_the_development_install_is_editable_from_the_working_tree() -> None:
    # In site-packages: a build leaves reelfork.egg-info in the working tree, which is on sys.path too.
    (installed,) = importlib.metadata.distributions(name="reelfork", path=[sysconfig.get_paths()["purelib"]])
    direct_url = installed.read_text("direct_url.json")
    assert direct_url is not None, "reelfork is not installed with pip"
    assert json.loads(direct_url).get("dir_info", {}).get("editable") is True
    assert Path(reelfork.server.__file__).resolve() == ROOT / "server" / "__init__.py"
    player = resources.files("reelfork.client_demo") / "index.html"
    assert Path(str(player)).resolve() == ROOT / "client-demo" / "index.html"
    stories = resources.files("reelfork.narrative") / "stories" / "last-ferry.yaml"
    assert stories.is_file()
