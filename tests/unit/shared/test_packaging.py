"""The installed package keeps one import name, every package of the tree ships, and an
import path names the folder it is in (`orderguard.scenario.plan` is `scenario/plan.py`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_python_package_in_the_tree_is_listed_for_installation() -> None:
    config = _setuptools()
    mapping = {directory: name for name, directory in config["package-dir"].items()}
    found = set()
    for directory, import_name in mapping.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory).parts
            found.add(".".join((import_name, *relative)))
    assert found == set(config["packages"])


def test_no_generic_top_level_import_names_are_installed() -> None:
    assert {name.split(".")[0] for name in _setuptools()["packages"]} == {"orderguard"}


def test_import_paths_are_disk_paths_under_the_orderguard_name() -> None:
    for name, directory in _setuptools()["package-dir"].items():
        assert name == "orderguard." + directory.replace("/", "."), (name, directory)
    for package in _setuptools()["packages"]:
        folder = ROOT.joinpath(*package.split(".")[1:])
        assert (folder / "__init__.py").is_file(), package
