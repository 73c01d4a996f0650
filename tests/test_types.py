"""The typed core: ``mypy --strict`` (the ``[tool.mypy]`` settings of pyproject.toml) reports
no error in the parts listed in :data:`CHECKED`, nor in the README's examples
(``tests/typing/readme.py``), which are also run here.

mypy comes with the ``dev`` extra. Without it the check is skipped, unless
``BOLLYDOG_REQUIRE_SERVICES=1`` makes that a failure. Modules outside :data:`CHECKED` are still
read for their types (``--follow-imports=silent``), but their own errors are not reported.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.typing import readme

ROOT = Path(__file__).resolve().parents[1]

#: Files and folders (relative to the repository root) that must pass. The transports and the
#: entrypoints join when their rewrites land: add them here, and drop them from NOT_YET.
CHECKED = [
    "bollydog/__init__.py",
    "bollydog/__main__.py",
    "bollydog/adapters",
    "bollydog/bootstrap.py",
    "bollydog/builder.py",
    "bollydog/cli",
    "bollydog/config",
    "bollydog/context.py",
    "bollydog/entrypoint",
    "bollydog/errors.py",
    "bollydog/globals.py",
    "bollydog/handlers.py",
    "bollydog/hub",
    "bollydog/logging.py",
    "bollydog/models",
    "bollydog/names.py",
    "bollydog/service",
    "bollydog/settings.py",
    "bollydog/telemetry",
    "bollydog/testing.py",
    "bollydog/transport",
    "bollydog/types.py",
    "tests/typing",
]
#: Files inside CHECKED folders that are not held to it yet.
NOT_YET: list[str] = []

_ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+(?::\d+)?: error: ")


def _files() -> list[str]:
    files: list[str] = []
    for entry in CHECKED:
        path = ROOT / entry
        found = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        files.extend(str(f.relative_to(ROOT)) for f in found)
    return [f for f in files if f not in NOT_YET]


def _mypy_unavailable() -> None:
    why = "mypy is not installed (it comes with the dev extra: pip install -e '.[dev]')"
    if os.environ.get("BOLLYDOG_REQUIRE_SERVICES") == "1":
        pytest.fail(f"BOLLYDOG_REQUIRE_SERVICES=1 but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture
def mypy_cache(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """pytest's own cache folder when it has one (a warm run takes a second, a cold one ~10)."""
    cache = getattr(request.config, "cache", None)
    return Path(cache.mkdir("mypy")) if cache is not None else tmp_path / "mypy"


def test_checked_paths_exist() -> None:
    missing = [entry for entry in CHECKED + NOT_YET if not (ROOT / entry).exists()]
    assert not missing, f"listed in tests/test_types.py but not in the checkout: {missing}"


def test_core_passes_mypy_strict(mypy_cache: Path) -> None:
    if importlib.util.find_spec("mypy") is None:
        _mypy_unavailable()
    command = [
        sys.executable, "-m", "mypy",
        "--config-file", str(ROOT / "pyproject.toml"),
        "--follow-imports=silent",
        "--cache-dir", str(mypy_cache),
        "--no-color-output", "--no-error-summary",
        *_files(),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    errors = [line for line in lines if _ERROR.match(line)]
    if errors or done.returncode != 0:
        listing = "\n".join(lines) or done.stderr.strip()
        pytest.fail(
            f"mypy --strict: {len(errors)} error(s) in the typed core (tests/test_types.py CHECKED):\n"
            f"{listing}",
            pytrace=False,
        )


async def test_readme_examples_run() -> None:
    """What tests/typing/readme.py type-checks also works."""
    await readme.main()
    await readme.refuse()
    await readme.test_place_order()
