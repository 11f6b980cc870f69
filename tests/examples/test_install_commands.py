"""The ``pip install`` commands of README.rst and of the examples work before the package is
published: they install it from the checkout (``.``, with extras that exist), never by its name
from an index, where it is not available yet."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
NAME = canonicalize_name(PROJECT["name"])
EXTRAS = set(PROJECT["optional-dependencies"])
# A pip command in running text or a code block: up to the end of the line, a closing
# ``literal`` or a shell comment.
PIP_INSTALL = re.compile(r"pip install ([^`#\n]+)")


def _commands(text: str) -> list[list[str]]:
    return [shlex.split(match.group(1)) for match in PIP_INSTALL.finditer(text)]


def _sources() -> list[tuple[str, str]]:
    """(name, text) of every document giving install commands (all run from the checkout)."""
    sources = [("README.rst", (ROOT / "README.rst").read_text(encoding="utf-8"))]
    for script in sorted((ROOT / "examples").glob("*.py")):
        sources.append((f"examples/{script.name}", script.read_text(encoding="utf-8")))
    return sources


def _installs_this_package_from_the_checkout(argument: str) -> bool:
    """Whether ``argument`` is the checkout's path, with extras this package defines; fails on
    a requirement that names this package (an index lookup)."""
    path, _, extras = argument.partition("[")
    if path.startswith((".", "/")):
        project = (ROOT / path).resolve()
        assert project == ROOT, f"{argument}: not the checkout"
        named = {e.strip() for e in extras.rstrip("]").split(",") if e.strip()}
        assert named <= EXTRAS, f"{argument}: no such extra {sorted(named - EXTRAS)}"
        return True
    try:
        requirement = Requirement(argument)
    except InvalidRequirement:
        return False
    assert canonicalize_name(requirement.name) != NAME, (
        f"{argument}: {NAME} is not published on a package index yet; install the checkout"
    )
    return False


@pytest.mark.parametrize(("name", "text"), _sources(), ids=[name for name, _ in _sources()])
def test_install_commands_install_the_checkout(name: str, text: str) -> None:
    commands = _commands(text)
    assert commands, f"{name}: no pip install command"
    from_checkout = 0
    for arguments in commands:
        for argument in arguments:
            if not argument.startswith("-"):
                from_checkout += _installs_this_package_from_the_checkout(argument)
    assert from_checkout, f"{name}: no command installs this package"


def test_readme_install_section_names_the_extras() -> None:
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    section = text[text.index("\nInstall\n") : text.index("\nQuick start\n")]
    installed = {argument for arguments in _commands(section) for argument in arguments}
    assert {".[instruments]", ".[instruments,warehouse]"} <= installed
