"""Every install comes from the lock, so no test result depends on what a machine had.

The suite runs in the environment `make test` built from constraints.txt: each installed
distribution must be pinned there at the installed version. A dependency added to
pyproject.toml without `make lock` is caught here, before it floats on a fresh machine.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The project itself (editable) and the installers, which the Makefile pins on its own.
NOT_LOCKED = {"executive-assistant", "pip", "setuptools", "wheel"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            pins[_canonical(name)] = version.strip()
    return pins


def test_every_installed_distribution_is_pinned_at_its_installed_version() -> None:
    pins = _pins(REPO / "constraints.txt")
    unpinned, different = [], []
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"])
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            unpinned.append(f"{name}=={dist.version}")
        elif pins[name] != dist.version:
            different.append(f"{name}: installed {dist.version}, locked {pins[name]}")
    assert not unpinned, f"installed but not in constraints.txt (run make lock): {unpinned}"
    assert not different, f"installed versions differ from the lock: {different}"


def test_the_compiled_llm_server_is_pinned_to_the_version_tested_here() -> None:
    assert _pins(REPO / "constraints.txt")["llama-cpp-python"] == "0.3.16"


def test_makefile_and_dockerfile_install_from_the_same_lock() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    pip_version = re.search(r"^PIP_VERSION := (\S+)$", makefile, re.M)
    assert pip_version is not None
    assert f"pip=={pip_version.group(1)}" in dockerfile
    for lock in ("constraints.txt", "build-constraints.txt"):
        assert lock in makefile and lock in dockerfile
    _pins(REPO / "build-constraints.txt")  # every build back-end pinned too
