"""Run the code blocks of README.md and docs/*.md: the machinery behind ``tests/test_docs.py``.

The convention (also summed up in ``tests/test_docs.py``):

* Every fenced block needs an info string. ``python``, ``yaml``/``yml``, ``json`` and
  ``shell``/``sh``/``bash`` blocks are *runnable* and run, unless the line right before the
  fence is ``<!-- not run: why -->``. ``text`` (and ``mermaid``) blocks are illustrations and never run (except
  WebSocket transcripts marked ``transcript``, below). Any other info string is an error.
* The line right before a fence may instead be ``<!-- run: option ... -->`` with options:
  ``serve=CONFIG`` (the block runs while ``bollydog service --config CONFIG`` serves),
  ``shell=CONFIG`` (a python block typed into ``bollydog shell --config CONFIG``),
  ``stub=mod.a,mod.b`` (empty modules the page names but does not show),
  ``needs=redis|otlp`` (Redis: skipped without ``BOLLYDOG_TEST_REDIS_URL``; OTLP: a receiver is
  started in the test and must get data), ``into=FILE#SECTION`` (a yaml fragment merged into
  that section of FILE, then built; a fragment showing the section under its key is unwrapped) and ``transcript`` (a ``text`` block of ``>``/``<``
  WebSocket frames, sent to and matched against the ``serve=`` service; ``…`` matches anything).
* A page is a small project in a fresh folder (the working directory of its blocks, first on
  ``sys.path``), with ``example/`` linked from the repository. A block whose first line is a
  ``# path/name.py`` (or ``.yaml``/``.json``) comment *is* that file: every such file of the
  page is written before the page's first block runs (blocks naming one file are joined);
  python files are imported at their block and their public names join the page namespace.
  A yaml block naming a file of the repository (``# example/config.yaml``) is an excerpt: it
  must match that file, which is then built.
* python: run in one namespace per page, in order; top-level ``await`` runs on an event loop;
  functions named ``test_*`` that a block defines are called (awaited). yaml: loaded with
  :func:`bollydog.config.loads_config`, built with :func:`bollydog.bootstrap.build` and started
  (entrypoints on free ports), then ``bollydog.TaskCount`` is executed. json: parsed (one
  document, or one per line). shell: one command a line (``\\`` continues); ``bollydog``
  commands run as subprocesses (``service`` in the background until the block ends, then
  SIGTERM, exit 0 expected; ``shell`` in a pseudo-terminal, left with Ctrl-D), ``curl`` runs
  for real and must succeed; ``export`` and ``VAR=value cmd`` set the environment; any other
  command is an error (mark the block ``not run``).
* Translations, so that tests never touch a developer's servers: ``8000``/``8001``/``4318`` in
  a block become the page's free HTTP/WebSocket/OTLP ports, ``redis://127.0.0.1:6379/0`` the
  test Redis, ``prefix: bollydog`` a prefix of the page's own (distribute sections without a
  prefix get it too); in-process telemetry sections default to ``install_global: false``.
"""

from __future__ import annotations

import asyncio
import ast
import contextlib
import copy
import gzip
import importlib
import inspect
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]

RUNNABLE = {"python": "python", "py": "python", "yaml": "yaml", "yml": "yaml", "json": "json",
            "shell": "shell", "sh": "shell", "bash": "shell"}
ILLUSTRATION = {"text", "mermaid"}  # mermaid: a diagram GitHub renders (docs/flow.md checks its own)
OPTIONS = {"serve", "shell", "stub", "needs", "into", "transcript"}
SERVICES = {"redis", "otlp"}

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<kind>not run|run)\s*:\s*(?P<body>.*?)\s*-->\s*$")
_ANY_DIRECTIVE = re.compile(r"^\s*<!--\s*(not run|run)\s*:")  # a marker line, not one quoted in text
_FILE_HEADER = re.compile(r"^#\s*(?P<path>[\w.-]+(?:/[\w.-]+)*\.(?:py|ya?ml|json))\b")


# -- extraction ----------------------------------------------------------------------------------


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    heading: str
    index: int  # 1-based, among the blocks under the same heading
    info: str
    text: str
    not_run: str | None = None  # the reason, when marked <!-- not run: ... -->
    options: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.info.split()[0].lower() if self.info.split() else ""

    @property
    def kind(self) -> str | None:
        """python, yaml, json or shell for runnable blocks; None otherwise."""
        return RUNNABLE.get(self.lang)

    @property
    def key(self) -> str:
        """Stable across edits of other sections: page, heading and position under it."""
        return f"{self.page}:{slug(self.heading)}.{self.index}"

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{slug(self.heading)}.{self.index}"

    @property
    def header(self) -> str | None:
        """The file a block says it is (first line ``# path/name.py``), if any."""
        first = self.text.split("\n", 1)[0]
        match = _FILE_HEADER.match(first) if self.kind in ("python", "yaml") else None
        return match.group("path") if match else None

    @property
    def runs(self) -> bool:
        return self.not_run is None and (self.kind is not None or "transcript" in self.options)


def slug(heading: str) -> str:
    text = re.sub(r"[`*_\[\]()]", "", heading.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "top"


def parse_markdown(text: str, page: str) -> tuple[list[Block], list[str]]:
    """The fenced blocks of ``text`` and the problems of the page as a whole (stray markers)."""
    lines = text.split("\n")
    blocks: list[Block] = []
    problems: list[str] = []
    heading, counts = "", {}
    used_directives: set[int] = set()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            heading_match = _HEADING.match(line)
            if heading_match:
                heading = heading_match.group("title")
            i += 1
            continue
        indent, marker, info = fence.group("indent"), fence.group("fence"), fence.group("info").strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close.group("fence")[0] == marker[0] and len(close.group("fence")) >= len(marker) \
                    and not close.group("info").strip():
                break
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        counts[heading] = counts.get(heading, 0) + 1
        block = Block(page, i + 1, heading, counts[heading], info, "\n".join(body) + "\n")
        if i > 0 and _DIRECTIVE.match(lines[i - 1]):
            used_directives.add(i - 1)
            _apply_directive(block, _DIRECTIVE.match(lines[i - 1]))
        _check(block)
        blocks.append(block)
        i = j + 1
    for number, line in enumerate(lines):
        if _ANY_DIRECTIVE.match(line) and number not in used_directives:
            problems.append(f"{page}:{number + 1}: a run/not run marker must be the line right before a fence")
    return blocks, problems


def _apply_directive(block: Block, match: re.Match[str]) -> None:
    body = match.group("body")
    if match.group("kind") == "not run":
        block.not_run = body
        if not body:
            block.problems.append("<!-- not run: ... --> needs a reason")
        return
    for token in body.split():
        name, _, value = token.partition("=")
        if name not in OPTIONS:
            block.problems.append(f"unknown run option {name!r} (known: {', '.join(sorted(OPTIONS))})")
        block.options[name] = value
    for service in filter(None, block.options.get("needs", "").split(",")):
        if service not in SERVICES:
            block.problems.append(f"needs={service}: unknown service (known: {', '.join(sorted(SERVICES))})")


def _check(block: Block) -> None:
    if not block.lang:
        block.problems.append("a fence without info string: name the language (``text`` for an illustration)")
    elif block.kind is None and block.lang not in ILLUSTRATION:
        block.problems.append(f"unknown info string {block.lang!r}: use a runnable language or ``text``")
    if "transcript" in block.options and block.lang != "text":
        block.problems.append("transcript is for ``text`` blocks of > / < frames")
    if "transcript" in block.options and "serve" not in block.options:
        block.problems.append("a transcript needs serve=CONFIG")
    if block.not_run is not None and block.kind is None:
        block.problems.append("only runnable blocks need a not run marker")
    if "shell" in block.options and block.kind != "python":
        block.problems.append("shell=CONFIG is for python blocks")


def collect() -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    problems: list[str] = []
    for page in PAGES:
        found, page_problems = parse_markdown((ROOT / page).read_text(encoding="utf-8"), page)
        blocks += found
        problems += page_problems
    return blocks, problems


# -- pages ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bollydog_command() -> list[str]:
    script = Path(sys.executable).with_name("bollydog")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bollydog.cli.main"]


class Page:
    """The folder, namespace, ports and services that the blocks of one page share."""

    def __init__(self, page: str, blocks: list[Block]) -> None:
        self.page = page
        self.blocks = blocks
        self.done = 0  # blocks run so far, in order
        self.folder = Path(tempfile.mkdtemp(prefix="bollydog-docs-"))
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.http_port, self.ws_port = free_port(), free_port()
        self.prefix = f"bddocs:{secrets.token_hex(4)}"
        # Started before the files are written: they may name the collector's port.
        needs_otlp = any("otlp" in b.options.get("needs", "") for b in blocks)
        self.receiver: OtlpReceiver | None = OtlpReceiver() if needs_otlp else None
        self.redis_url = os.environ.get("BOLLYDOG_TEST_REDIS_URL", "").strip()
        self.used_redis = False
        (self.folder / "example").symlink_to(ROOT / "example", target_is_directory=True)
        self._write_files()

    # Everything a page names exists before its first block runs, as in a checked-out project.
    def _write_files(self) -> None:
        files: dict[str, list[str]] = {}
        for block in self.blocks:
            header = block.header
            if header and block.runs and not (ROOT / header).exists():
                files.setdefault(header, []).append(self.translate(block.text))
            for module in filter(None, block.options.get("stub", "").split(",")):
                path = module.replace(".", "/") + ".py"
                files.setdefault(path, []).append(f'"""{module}: a placeholder the page names."""\n')
        for path, parts in files.items():
            target = self.folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n\n".join(parts), encoding="utf-8")
            if target.suffix == ".py":
                package = target.parent
                while package != self.folder:
                    (package / "__init__.py").touch(exist_ok=True)
                    package = package.parent

    def translate(self, text: str) -> str:
        text = re.sub(r"(?<!\d)8000(?!\d)", str(self.http_port), text)
        text = re.sub(r"(?<!\d)8001(?!\d)", str(self.ws_port), text)
        if self.receiver is not None:
            text = re.sub(r"(?<!\d)4318(?!\d)", str(self.receiver.port), text)
        if self.redis_url:
            text = text.replace("redis://127.0.0.1:6379/0", self.redis_url)
        return re.sub(r"(?m)^(\s*prefix:\s*)bollydog\b", rf"\g<1>{self.prefix}", text)

    def environment(self) -> dict[str, str]:
        """What the page's blocks (in-process and subprocesses) see besides os.environ."""
        env = {
            "BOLLYDOG_HTTP_SERVICE_HOST": "127.0.0.1",
            "BOLLYDOG_HTTP_SERVICE_PORT": str(self.http_port),
            "BOLLYDOG_WS_SERVICE_HOST": "127.0.0.1",
            "BOLLYDOG_WS_SERVICE_PORT": str(self.ws_port),
            "BOLLYDOG_EXAMPLE_DATABASE_URL": f"sqlite+aiosqlite:///{self.folder / 'example.db'}",
        }
        if self.redis_url:
            env["BOLLYDOG_REDIS_URL"] = self.redis_url
        return env

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """cwd, sys.path and environment of the page, restored afterwards."""
        from bollydog.settings import reload_settings

        saved_env = dict(os.environ)
        saved_cwd = os.getcwd()
        saved_path = list(sys.path)  # build() adds the working directory for good
        os.environ.update(self.environment())
        for name in [n for n in os.environ if n.startswith("OTEL_")]:  # the developer's own
            del os.environ[name]
        os.chdir(self.folder)
        sys.path.insert(0, str(self.folder))
        importlib.invalidate_caches()
        reload_settings()
        try:
            yield
        finally:
            os.chdir(saved_cwd)
            sys.path[:] = saved_path
            os.environ.clear()
            os.environ.update(saved_env)
            reload_settings()

    def forget_modules(self) -> None:
        """Drop the page's modules, so another page may have a ``shop`` package of its own."""
        folder = str(self.folder)
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None) or ""
            paths = list(getattr(module, "__path__", []) or [])
            if where.startswith(folder) or any(str(p).startswith(folder) for p in paths):
                if not name.startswith("example"):
                    del sys.modules[name]

    def close(self) -> None:
        self.forget_modules()
        if self.receiver is not None:
            self.receiver.stop()
        if self.used_redis and self.redis_url:
            _delete_redis_keys(self.redis_url, self.prefix)
        shutil.rmtree(self.folder, ignore_errors=True)


def _delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Pages:
    """The pages met so far; switching to another page drops the modules of the previous one."""

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.pages: dict[str, Page] = {}
        self.current: Page | None = None

    def run(self, block: Block) -> None:
        """Run ``block``, after the earlier blocks of its page that have not run yet."""
        page = self.pages.get(block.page)
        if page is None:
            page = self.pages[block.page] = Page(block.page, [b for b in self.blocks if b.page == block.page])
        if self.current is not page:
            if self.current is not None:
                self.current.forget_modules()
            self.current = page
        earlier = [b for b in page.blocks if b.line < block.line and b.runs]
        for previous in earlier[page.done:]:
            # Only for what they leave behind (files, names); their own tests report them.
            with contextlib.suppress(Exception, pytest.skip.Exception, pytest.fail.Exception):
                run_block(previous, page)
        page.done = len(earlier) + 1
        run_block(block, page)

    def close(self) -> None:
        for page in self.pages.values():
            page.close()
        self.pages.clear()
        self.current = None


# -- the OTLP receiver -----------------------------------------------------------------------------


class OtlpReceiver(ThreadingHTTPServer):
    """A minimal OTLP/HTTP endpoint on a free port: keeps every POST body by path."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHandler)
        self.bodies: list[tuple[str, bytes]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def service_names(self) -> set[str]:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        kinds = {"/v1/traces": (ExportTraceServiceRequest, "resource_spans"),
                 "/v1/metrics": (ExportMetricsServiceRequest, "resource_metrics"),
                 "/v1/logs": (ExportLogsServiceRequest, "resource_logs")}
        names = set()
        for path, body in list(self.bodies):
            kind, attribute = kinds[path]
            request = kind()
            request.ParseFromString(body)
            for resource in getattr(request, attribute):
                for attr in resource.resource.attributes:
                    if attr.key == "service.name":
                        names.add(attr.value.string_value)
        return names


class _OtlpHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


# -- running a block -------------------------------------------------------------------------------


def run_block(block: Block, page: Page) -> None:
    """Run one block in its page (the earlier blocks of the page have run)."""
    needs = set(filter(None, block.options.get("needs", "").split(",")))
    if "redis" in needs:
        from tests.distribute.conftest import redis_url_or_skip

        page.redis_url = redis_url_or_skip()
        page.used_redis = True
    if page.receiver is None and re.search(r"(?<!\d)4318(?!\d)", block.text):
        # Else it would export to a collector the developer may run (or wait on retries).
        raise AssertionError("the block talks to an OTLP collector (4318): mark it <!-- run: needs=otlp -->")
    received = len(page.receiver.bodies) if page.receiver is not None else 0
    with page.active():
        if "transcript" in block.options:
            run_transcript(block, page)
        elif block.kind == "python":
            run_python(block, page)
        elif block.kind == "yaml":
            run_yaml(block, page)
        elif block.kind == "json":
            run_json(block)
        elif block.kind == "shell":
            run_shell(block, page)
    if "otlp" in needs:
        assert page.receiver is not None
        assert len(page.receiver.bodies) > received, "nothing reached the OTLP receiver"
        named = re.findall(r"(?:OTEL_SERVICE_NAME=|service_name:\s*)([\w.-]+)", block.text)
        for name in named:
            assert name in page.receiver.service_names(), (
                f"no export with service.name {name!r}; got {page.receiver.service_names()}"
            )


# python ------------------------------------------------------------------------------------------


def run_python(block: Block, page: Page) -> None:
    before = dict(page.namespace)
    header = block.header
    if header:
        module_name = header[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        module = importlib.import_module(module_name)
        page.namespace.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    elif "shell" in block.options:
        asyncio.run(_in_shell(block, page))
        return
    else:
        result = eval(_compile(block, page), page.namespace)  # noqa: S307 - the documentation's own code
        if inspect.iscoroutine(result):
            asyncio.run(result)
    for name, value in list(page.namespace.items()):
        if name.startswith("test_") and callable(value) and before.get(name) is not value:
            outcome = value()
            if inspect.iscoroutine(outcome):
                asyncio.run(outcome)


def _compile(block: Block, page: Page) -> Any:
    """The block's code, top-level ``await`` allowed, with the line numbers of the markdown file
    (so a traceback shows the page's own lines); no ``from __future__`` of this module leaks in."""
    source = "\n" * block.line + page.translate(block.text)
    return compile(source, str(ROOT / block.page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


async def _in_shell(block: Block, page: Page) -> None:
    """As if typed into ``bollydog shell --config CONFIG``: its namespace, its running hub."""
    from bollydog.bootstrap import build
    from bollydog.cli.shell import shell_namespace
    from bollydog.context import current_hub

    composition = build(block.options["shell"], entrypoints=False)
    hub = composition.hub
    namespace = shell_namespace(hub)
    async with hub:
        current_hub.set(hub)
        result = eval(_compile(block, page), namespace)  # noqa: S307
        if inspect.iscoroutine(result):
            await result


# yaml --------------------------------------------------------------------------------------------


def run_yaml(block: Block, page: Page) -> None:
    from bollydog.config import load_config, loads_config

    header = block.header
    if "into" in block.options:
        file, _, section = block.options["into"].partition("#")
        base = loads_config(page.translate(_read(file, page)), source=file)
        fragment = loads_config(page.translate(block.text), source=block.id)
        if list(fragment) == [section]:  # the block shows the whole section, key included
            fragment = fragment[section]
        base[section] = _merge(base.get(section) or {}, fragment)
        config = base
    elif header and (ROOT / header).exists():
        # An excerpt of a file of the repository: what it shows must be what the file says.
        whole = loads_config((ROOT / header).read_text(encoding="utf-8"), source=header)
        shown = loads_config(block.text, source=block.id)
        _assert_excerpt(shown, whole, header)
        config = loads_config(page.translate((ROOT / header).read_text(encoding="utf-8")), source=header)
    elif header:
        config = load_config(page.folder / header)  # written (translated) with the page
    else:
        config = loads_config(page.translate(block.text), source=block.id)
    asyncio.run(_start(_adjust(config, page)))


def _read(file: str, page: Page) -> str:
    path = ROOT / file if (ROOT / file).exists() else page.folder / file
    return path.read_text(encoding="utf-8")


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(extra, Mapping):
        merged = dict(base)
        for key, value in extra.items():
            merged[key] = _merge(merged.get(key), value) if key in merged else value
        return merged
    return extra


def _assert_excerpt(shown: Any, whole: Any, where: str, path: str = "") -> None:
    if isinstance(shown, Mapping):
        assert isinstance(whole, Mapping), f"{where}: {path or 'top'} is not a mapping there"
        for key, value in shown.items():
            assert key in whole, f"{where} has no key {path + key!r} that the block shows"
            _assert_excerpt(value, whole[key], where, f"{path}{key}.")
    else:
        assert shown == whole, f"{where}: {path.rstrip('.')} is {whole!r} there, the block shows {shown!r}"


def _adjust(config: dict[str, Any], page: Page) -> dict[str, Any]:
    """Keep in-process runs to themselves: own Redis keys, no process-wide OTel providers."""
    config = copy.copy(config)
    for key, section in config.items():
        if not isinstance(section, Mapping):
            continue
        app = str(getattr(section.get("app"), "path", section.get("app")) or "")
        if app.endswith("RedisTransport") and "prefix" not in section:
            config[key] = {**section, "prefix": page.prefix}
        if app.endswith("TelemetryPlugin") and "install_global" not in section:
            config[key] = {**section, "install_global": False}
    return config


async def _start(config: dict[str, Any]) -> None:
    from bollydog.bootstrap import build
    from bollydog.service import builtins

    hub = build(config).hub
    async with hub:
        counts = await hub.execute(builtins.TaskCount())
        assert set(counts) == {"running", "queued"}, counts


# json --------------------------------------------------------------------------------------------


def run_json(block: Block) -> None:
    try:
        json.loads(block.text)
        return
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(block.text.splitlines(), 1):  # JSON lines (frames)
        if line.strip():
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssertionError(f"line {number} is not JSON ({exc}): {line}") from None


# shell -------------------------------------------------------------------------------------------


def shell_commands(text: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, blank lines dropped."""
    commands, current = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            commands.append(current.strip())
        current = ""
    if current.strip():
        commands.append(current.strip())
    return commands


class BackgroundService:
    """``bollydog service ...`` in the background, its output collected."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.argv = argv
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output: list[str] = []
        self.terminated = False
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "hub started" in line:
                self.started.set()

    def text(self) -> str:
        return "".join(self.output)[-4000:]

    def wait_started(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{shlex.join(self.argv[1:])} did not start:\n{self.text()}")

    def terminate(self) -> None:
        # Once: a second SIGTERM means "force" to the CLI, or kills it once its handlers are gone.
        if not self.terminated and self.process.poll() is None:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{shlex.join(self.argv[1:])} did not stop on SIGTERM:\n{self.text()}") from None
        self._reader.join(5)
        assert code == 0, f"{shlex.join(self.argv[1:])} exited {code} on SIGTERM:\n{self.text()}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def subprocess_environment(page: Page) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(page.environment())
    env.update({"BOLLYDOG_LOG_LEVEL": "INFO", "BOLLYDOG_LOG_JSON": "false", "BOLLYDOG_SHELL_HISTORY": "",
                "TERM": "dumb"})
    env.pop("BOLLYDOG_LOG_FILE", None)
    return env


def run_shell(block: Block, page: Page) -> None:
    env = subprocess_environment(page)
    services: list[BackgroundService] = []
    try:
        if "serve" in block.options:
            services.append(_serve(block.options["serve"], env, page))
        for command in shell_commands(page.translate(block.text)):
            _run_command(command, env, page, services)
    except BaseException:
        for service in services:
            service.kill()
        raise
    # Stopped together, like the user's Ctrl-C in each terminal: each must exit 0.
    for service in reversed(services):
        service.terminate()
    for service in reversed(services):
        service.stop()


def _serve(config: str, env: dict[str, str], page: Page) -> BackgroundService:
    service = BackgroundService([*bollydog_command(), "service", "--config", config], env, page.folder)
    service.wait_started()
    return service


def _run_command(command: str, env: dict[str, str], page: Page, services: list[BackgroundService]) -> None:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)  # quotes and comments aware
    lexer.whitespace_split = True
    if any(token and set(token) <= set("();<>|&") for token in lexer):
        raise AssertionError(f"one plain command a line, please (no pipes, lists, redirections): {command}")
    argv = shlex.split(command, comments=True)
    if not argv:
        return
    local = dict(env)
    if argv[0] == "export":
        for assignment in argv[1:]:
            name, _, value = assignment.partition("=")
            env[name] = value
        return
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        local[name] = value
    program = argv[0]
    if program in ("python", "python3") and argv[1:3] == ["-m", "bollydog"]:
        program, argv = "bollydog", ["bollydog", *argv[3:]]
    if program in ("bollydog", ".venv/bin/bollydog"):
        argv = [*bollydog_command(), *argv[1:]]
        what = argv[len(bollydog_command())] if len(argv) > len(bollydog_command()) else ""
        if what == "service":
            service = BackgroundService(argv, local, page.folder)
            services.append(service)
            service.wait_started()
        elif what == "shell":
            _interactive_shell(argv, local, page)
        else:
            _run_to_end(argv, local, page, expect_json=what == "execute" or "--json" in argv)
    elif program == "curl":
        _curl(argv, local, page)
    else:
        raise AssertionError(
            f"{program!r} is not a command the docs tests run; mark the block <!-- not run: why --> "
            "or teach tests/docs_harness.py"
        )


def _run_to_end(argv: list[str], env: dict[str, str], page: Page, *, expect_json: bool) -> None:
    done = subprocess.run(argv, cwd=page.folder, env=env, capture_output=True, text=True, timeout=60)
    shown = shlex.join(["bollydog", *argv[len(bollydog_command()):]])
    assert done.returncode == 0, f"{shown} exited {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}"
    if expect_json:
        try:
            json.loads(done.stdout)  # one document (execute, ls --json) ...
        except json.JSONDecodeError:
            try:  # ... or one a line (deadletters list --json)
                [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
            except json.JSONDecodeError:
                raise AssertionError(f"{shown} did not print JSON:\n{done.stdout}") from None


def _interactive_shell(argv: list[str], env: dict[str, str], page: Page) -> None:
    import pexpect

    child = pexpect.spawn(argv[0], argv[1:], cwd=str(page.folder), env=env, encoding="utf-8",
                          timeout=15, dimensions=(50, 200))
    try:
        child.expect("Ctrl-D or exit")
        child.expect(">>>")
        child.sendcontrol("d")  # leaves at once
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, f"bollydog shell exited {child.exitstatus}: {child.before}"


def _curl(argv: list[str], env: dict[str, str], page: Page) -> None:
    streaming = any("text/event-stream" in a for a in argv)
    # --fail-with-body: an HTTP error is a failure; the doc's own options come after ours.
    command = ["curl", "-sS", "--fail-with-body", "--max-time", "15", *argv[1:]]
    done = subprocess.run(command, cwd=page.folder, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{shlex.join(argv)} failed ({done.returncode}): {done.stderr} {done.stdout}"
    if streaming:
        assert "event: result" in done.stdout and "event: error" not in done.stdout, done.stdout
    else:
        try:
            json.loads(done.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"{shlex.join(argv)} did not answer JSON: {done.stdout[:500]}") from None


# WebSocket transcripts ---------------------------------------------------------------------------


def run_transcript(block: Block, page: Page) -> None:
    env = subprocess_environment(page)
    service = _serve(block.options["serve"], env, page)
    try:
        asyncio.run(_converse(block, page))
    except BaseException:
        service.kill()
        raise
    service.stop()


async def _converse(block: Block, page: Page) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{page.ws_port}/") as socket_:
        for line in page.translate(block.text).splitlines():
            if line.startswith(">"):
                await socket_.send(line[1:].strip())
            elif line.startswith("<"):
                expected = _pattern(line[1:].strip())
                seen = []
                while True:
                    try:
                        frame = json.loads(await asyncio.wait_for(socket_.recv(), 5))
                    except TimeoutError:
                        raise AssertionError(f"no frame like {line[1:].strip()} within 5 s; got {seen}") from None
                    seen.append(frame)
                    if _matches(expected, frame):
                        break
                    assert len(seen) < 20, f"no frame like {line[1:].strip()}; got {seen}"


_ANY = object()


def _pattern(text: str) -> Any:
    """An expected frame: JSON where "…" (or {…}, […]) matches anything, "a…b" a prefix/suffix."""
    text = re.sub(r"\{…\}|\[…\]", '"…"', text)
    return _compile_pattern(json.loads(text))


def _compile_pattern(value: Any) -> Any:
    if value == "…":
        return _ANY
    if isinstance(value, str) and "…" in value:
        return re.compile(".*".join(re.escape(part) for part in value.split("…")), re.S)
    if isinstance(value, dict):
        return {k: _compile_pattern(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_pattern(v) for v in value]
    return value


def _matches(expected: Any, actual: Any) -> bool:
    if expected is _ANY:
        return True
    if isinstance(expected, re.Pattern):
        return isinstance(actual, str) and expected.fullmatch(actual) is not None
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            _matches(e, a) for e, a in zip(expected, actual)
        )
    return expected == actual and type(expected) is type(actual)
