"""The README's uv install flows, in a temporary copy of the checkout's tracked files.

`uv sync` (the example service runs), `uv sync --dev` (the test tools of the `dev` extra are
there and pytest runs), `uv build --all` (a wheel and an sdist; the wheel, installed into a clean
venv, runs `bollydog` from the checkout root, where `example/` lives).

uv comes from ``$UV`` (set when uv runs these tests), the interpreter's folder or ``PATH`` (version
``UV_MIN`` or newer); otherwise pip installs it from PyPI into a temporary folder. Without uv or
without PyPI the tests are skipped, unless ``BOLLYDOG_REQUIRE_SERVICES=1`` makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV_MIN = (0, 5, 0)
STEP_TIMEOUT = 300  # seconds for one uv step (downloads included)
PYTHON = f"--python={sys.executable}"
EXECUTE = ["execute", "--config=example/config.yaml", "--message=example.handler.TaskCount"]


def _required() -> bool:
    return os.environ.get("BOLLYDOG_REQUIRE_SERVICES") == "1"


def _unavailable(why: str) -> None:
    if _required():
        pytest.fail(f"BOLLYDOG_REQUIRE_SERVICES=1 but {why}", pytrace=False)
    pytest.skip(why)


def _uv_version(uv: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([uv, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"uv (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in match.groups()) if match else None


def _find_uv() -> str | None:
    candidates = [
        os.environ.get("UV"),
        str(Path(sys.executable).with_name("uv")),
        shutil.which("uv"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            version = _uv_version(candidate)
            if version is not None and version >= UV_MIN:
                return candidate
    return None


def _pypi_reachable() -> str | None:
    """None when PyPI answers, else why not (a custom uv index or a proxy is trusted as is)."""
    trusted = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_INDEX", "HTTPS_PROXY", "https_proxy", "ALL_PROXY")
    if any(os.environ.get(name) for name in trusted):
        return None
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        return f"PyPI (pypi.org:443) unreachable: {exc}"
    return None


@pytest.fixture(scope="module")
def uv(tmp_path_factory) -> str:
    offline = None if _required() else _pypi_reachable()
    if offline:
        pytest.skip(offline)
    found = _find_uv()
    if found:
        return found
    target = tmp_path_factory.mktemp("uv")
    minimum = ".".join(map(str, UV_MIN))
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(target), f"uv>={minimum}"],
        capture_output=True, text=True, timeout=STEP_TIMEOUT,
    )
    uv_bin = target / "bin" / "uv"
    if install.returncode != 0 or not uv_bin.is_file():
        _unavailable(f"uv>={minimum} could not be installed with pip: {install.stderr.strip()[-2000:]}")
    version = _uv_version(str(uv_bin))
    assert version is not None and version >= UV_MIN, f"{uv_bin} --version gave {version}"
    return str(uv_bin)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the tracked files (as they are in the working tree), away from .venv, dist, ..."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60)
    except OSError as exc:
        _unavailable(f"git ls-files could not run: {exc}")
    if listed.returncode != 0:
        _unavailable(f"git ls-files failed in {ROOT}: {listed.stderr.decode(errors='replace').strip()}")
    copy = tmp_path_factory.mktemp("checkout") / "bollydog"
    for name in listed.stdout.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():  # a tracked file deleted in the working tree is left out
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    assert (copy / "pyproject.toml").is_file() and (copy / "example" / "config.yaml").is_file()
    return copy


@pytest.fixture(scope="module")
def env(uv, tmp_path_factory) -> dict[str, str]:
    """The user's environment minus the venv running these tests (which uv must not touch),
    with uv, alone in a folder, first on PATH. Venvs are made with ``PYTHON``, the interpreter
    running the tests."""
    uv_folder = tmp_path_factory.mktemp("uv-on-path")
    (uv_folder / "uv").symlink_to(uv)
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT"}}
    env.update(
        PATH=os.pathsep.join([str(uv_folder), env.get("PATH", "")]),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        UV_LINK_MODE="copy",
    )
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT
    )
    if ok:
        assert result.returncode == 0, (
            f"{' '.join(map(str, args))} (in {cwd}) exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_example(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    """`<command> service --config example/config.yaml` answers the example URL, stops on SIGTERM."""
    http_port, ws_port = _free_port(), _free_port()
    env = {**env, "BOLLYDOG_HTTP_SERVICE_HOST": "127.0.0.1", "BOLLYDOG_HTTP_SERVICE_PORT": str(http_port),
           "BOLLYDOG_WS_SERVICE_HOST": "127.0.0.1", "BOLLYDOG_WS_SERVICE_PORT": str(ws_port)}
    process = subprocess.Popen(
        [*command, "service", "--config", "example/config.yaml"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{http_port}/example/exampleservice/taskcount"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    status, body = response.status, json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise AssertionError(
                        f"{url} never answered; service output:\n{process.communicate()[0].decode(errors='replace')}"
                    ) from None
                time.sleep(0.2)
        assert status == 200 and isinstance(body, int), (status, body)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, process.communicate()[0].decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _name(requirement: str) -> tuple[str, list[str]]:
    """Normalised distribution name and extras of a requirement string."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert match, requirement
    extras = [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), extras


def dev_extra_distributions() -> set[str]:
    """Every distribution `pip install -e '.[dev]'` asks for (the extras it names, expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names: set[str] = set()
    pending, seen = ["dev"], set()
    while pending:
        extra = pending.pop()
        seen.add(extra)
        for requirement in extras[extra]:
            name, wanted = _name(requirement)
            if name == "bollydog":
                pending.extend(e for e in wanted if e not in seen)
            else:
                names.add(name)
    names.update(_name(r)[0] for r in project["dependencies"])
    return names


def installed(uv: str, python: Path, env: dict[str, str]) -> dict[str, dict]:
    out = run([uv, "pip", "list", "--python", python, "--format", "json"], python.parent, env).stdout
    return {re.sub(r"[-_.]+", "-", d["name"]).lower(): d for d in json.loads(out)}


def test_uv_sync_gives_a_venv_that_runs_the_example(uv, project, env):
    run([uv, "sync", PYTHON], project, env)
    python = project / ".venv" / "bin" / "python"
    packages = installed(uv, python, env)
    assert packages["bollydog"].get("editable_project_location"), packages["bollydog"]
    assert {"starlette", "uvicorn", "sqlalchemy", "aiosqlite"} <= packages.keys()  # http, sql extras
    assert "pytest" not in packages  # the test tools come with --dev

    assert "Usage: bollydog" in run([uv, "run", "bollydog", "--help"], project, env).stdout
    result = run([uv, "run", "bollydog", *EXECUTE], project, env)
    assert isinstance(json.loads(result.stdout), int), result.stdout
    serve_example([uv, "run", "bollydog"], project, env)


def test_uv_sync_dev_adds_the_test_tools_of_the_dev_extra(uv, project, env):
    run([uv, "sync", "--dev", PYTHON], project, env)
    packages = installed(uv, project / ".venv" / "bin" / "python", env)
    missing = dev_extra_distributions() - packages.keys()
    assert not missing, f"uv sync --dev lacks what pip install -e '.[dev]' installs: {sorted(missing)}"

    run([uv, "run", "python", "-c", "import pytest, pytest_asyncio, httpx, pexpect, openapi_spec_validator"],
        project, env)
    assert "Usage: bollydog" in run([uv, "run", "bollydog", "--help"], project, env).stdout
    result = run([uv, "run", "pytest", "-p", "no:cacheprovider", "tests/test_config_loader.py"], project, env)
    assert re.search(r"\d+ passed", result.stdout) and "failed" not in result.stdout, result.stdout


def test_uv_build_all_gives_a_wheel_that_runs_from_the_checkout_root(uv, project, env, tmp_path):
    run([uv, "build", "--all"], project, env)
    wheels = sorted((project / "dist").glob("bollydog-*.whl"))
    sdists = sorted((project / "dist").glob("bollydog-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in (project / "dist").iterdir())
    wheel = wheels[0]

    # A clean venv, the wheel with the extras the example needs.
    venv = tmp_path / "venv"
    run([uv, "venv", PYTHON, venv], tmp_path, env)
    run([uv, "pip", "install", "--python", venv / "bin" / "python", f"{wheel}[http,sql]"], tmp_path, env)
    bollydog = venv / "bin" / "bollydog"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    origin = run([venv / "bin" / "python", "-c", "import bollydog; print(bollydog.__file__)"], elsewhere, env)
    assert Path(origin.stdout.strip()).is_relative_to(venv), origin.stdout  # from the wheel
    assert "Usage: bollydog" in run([bollydog, "--help"], elsewhere, env).stdout
    no_example = run([venv / "bin" / "python", "-c", "import example"], elsewhere, env, ok=False)
    assert no_example.returncode != 0 and "No module named 'example'" in no_example.stderr

    result = run([bollydog, *EXECUTE], project, env)  # example/ comes from the checkout
    assert isinstance(json.loads(result.stdout), int), result.stdout
    serve_example([str(bollydog)], project, env)

    # The README's `uv run uv pip install dist/bollydog-*.whl` puts the wheel into .venv.
    run([uv, "sync", PYTHON], project, env)
    run([uv, "run", "uv", "pip", "install", wheel], project, env)
    location = installed(uv, project / ".venv" / "bin" / "python", env)["bollydog"]
    assert not location.get("editable_project_location"), location
    assert "Usage: bollydog" in run([project / ".venv" / "bin" / "bollydog", "--help"], elsewhere, env).stdout
