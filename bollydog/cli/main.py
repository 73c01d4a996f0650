"""The ``bollydog`` command: ``execute``, ``service``, ``shell``, ``ls``, ``docs``, ``graph``.

Every command takes ``--config`` (YAML or JSON; optional when ``BOLLYDOG_HANDLERS`` names the
handler modules). A ``.env`` file in the current directory is loaded first (existing variables
win). Errors are printed on stderr as ``error: <code>: <message>`` with the exit status the error
declares (:func:`bollydog.errors.describe`): 1 for a failing handler unless its error says
otherwise, 2 for bad input (config, unknown message, invalid field). ``service`` exits 0 once
stopped, and 128 + the signal number (130 for SIGINT, 143 for SIGTERM) when a second signal
forced it.
"""

from __future__ import annotations

import json
import types
import typing
import sys
from pathlib import Path
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bollydog.context import current_session
from bollydog.encoding import dumps_text
from bollydog.errors import BollydogError, InvalidMessageError, TransportError, UnknownMessageError
from bollydog.models.base import BaseMessage, Event, Session
from bollydog.cli.exits import EXIT_BAD_INPUT, EXIT_HANDLER_FAILED, fail, fail_with, run
from bollydog.settings import get_settings, reload_settings

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.types import HubT

log = logging.getLogger("bollydog.cli")



_config_option = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (YAML or JSON).",
)
_include_option = click.option("--include", default="", help="Comma-separated config keys to run here.")
_exclude_option = click.option("--exclude", default="", help="Comma-separated config keys not to run here.")


def _split(names: str) -> list[str]:
    return [n.strip() for n in names.split(",") if n.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bollydog")
def cli() -> None:
    """bollydog: Commands, Events and one Hub behind every entrypoint."""
    from dotenv import load_dotenv

    from bollydog.logging import configure_logging

    load_dotenv(Path.cwd() / ".env", override=False)
    try:
        settings = reload_settings()
    except BollydogError as exc:  # a BOLLYDOG_* variable with a value that names nothing
        fail_with(exc)
    configure_logging(settings.log_level, json=settings.log_json, file=settings.log_file)


#: The value of a flag given without one (``--urgent``): true, for a boolean field only.
BARE_FLAG = "true"


def parse_fields(args: list[str]) -> tuple[dict[str, Any], set[str]]:
    """``--name=value`` / ``--name value`` pairs (a repeated name gives a list), and the names
    given as bare flags, with no value."""
    fields: dict[str, Any] = {}
    bare: set[str] = set()
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or arg == "--":
            raise InvalidMessageError("message", [{"field": arg, "message": "expected --field=value", "type": "cli"}])
        name, sep, value = arg[2:].partition("=")
        if not sep:
            if index + 1 >= len(args) or args[index + 1].startswith("--"):
                value = BARE_FLAG
                bare.add(name.replace("-", "_"))
            else:
                index += 1
                value = args[index]
        name = name.replace("-", "_")
        if name in fields:
            previous = fields[name]
            fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[name] = value
        index += 1
    return fields, bare


def check_bare_flags(message_class: type[BaseMessage], bare: set[str]) -> None:
    """A flag without a value sets a boolean field; any other field needs its value."""
    fields = message_class.model_fields
    errors = [
        {"field": name, "message": f"needs a value (--{name.replace('_', '-')}=...): only a boolean field is set by a bare flag",
         "type": "cli"}
        for name in sorted(bare)
        if name in fields and not _takes_bool(fields[name].annotation)
    ]
    if errors:
        raise InvalidMessageError(f"{message_class.domain}.{message_class.name}", errors)


def _takes_bool(annotation: Any) -> bool:
    """``bool``, ``bool | None``, ``Optional[bool]``: what a bare flag may set."""
    if annotation is bool:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _takes_bool(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(arm is bool for arm in typing.get_args(annotation))
    return False


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@_config_option
@click.option("--message", "message_ref", required=True, help="Message class path or registered name.")
@_include_option
@_exclude_option
@click.pass_context
def execute(ctx: click.Context, config: str | None, message_ref: str, include: str, exclude: str) -> None:
    """Run one message and print its result as JSON. Extra --field=value set its fields.

    Its domain runs in this process unless --include/--exclude leave it out; then the message
    goes through the config's transport to a service running that domain. Either way this
    process only sends: it never consumes other processes' messages."""
    from bollydog.bootstrap import build

    async def main() -> None:
        fields, bare = parse_fields(ctx.args)
        composition = build(
            config, include=_split(include), exclude=_split(exclude), entrypoints=False, consumers=False
        )
        hub = composition.hub
        async with hub:
            message_class = _resolve_for_cli(hub, message_ref, config)
            current_session.set(Session.local_user())
            check_bare_flags(message_class, bare)
            message = message_class.from_input(fields, strings=True)
            await _check_remote_route(hub, message_class)
            try:
                # Through the hub's admission, as an entrypoint's request: a failure is logged
                # once, by the hub, with its trace id, before it is printed below.
                result = await hub.submit(message)
            except Exception as exc:  # the handler's own errors too, with their exit status
                fail_with(exc)
            # Printed before the hub stops: flushing telemetry on stop (an OTLP endpoint with
            # no collector, say) must not hold the answer back. The JSON is the HTTP body's.
            click.echo(dumps_text(result))
            sys.stdout.flush()

    run(main)


async def _check_remote_route(hub: HubT, message_class: type[BaseMessage]) -> None:
    """A message that leaves this process needs its broker: one that is down is a
    :class:`TransportError` naming both, before anything is sent."""
    transport = hub.transport
    local = not issubclass(message_class, Event) and hub.registry.command_handler(message_class) is not None
    if local or not transport.serves(message_class):
        return
    problem = await transport.probe()
    if problem is not None:
        name = hub.registry.name_of(message_class)
        raise TransportError(
            f"{name} is handled by {', '.join(transport.domains_for(message_class))}, which runs in "
            f"another process (left out by --include/--exclude), and {problem}"
        )


def _resolve_for_cli(hub: HubT, reference: str, config: str | None) -> type[BaseMessage]:
    try:
        return hub.registry.resolve(reference)
    except UnknownMessageError as exc:
        if config is None and not get_settings().handler_modules:
            raise UnknownMessageError(
                f"{exc}. No --config was given and BOLLYDOG_HANDLERS is empty, so only the "
                "built-in messages are known: pass --config path/to/config.yaml"
            ) from None
        # A domain of the config left out here, with no transport to reach it: say so, rather
        # than that the message does not exist.
        prefix = reference.partition(".")[0]
        if prefix in hub.registry.unloaded_domains():
            raise UnknownMessageError(
                f"{exc}. Domain '{prefix}' is in the config but left out by --include/--exclude, and "
                "the config has no transport (a distribute section) to reach a process running it: "
                "run it here (drop it from --exclude), or add the transport"
            ) from None
        raise


_reload_option = click.option(
    "--reload", is_flag=True,
    help="Swap changed handler code in place; restart gracefully for what a swap cannot carry "
    "(see docs/reload.md). Needs the reload extra.",
)


@cli.command()
@_config_option
@_include_option
@_exclude_option
@_reload_option
def service(config: str | None, include: str, exclude: str, reload: bool) -> None:
    """Run the hub and every configured service until SIGINT/SIGTERM."""
    from bollydog.bootstrap import build
    from bollydog.cli.runner import EXIT_STOPPED, exit_now, exit_soon, serve
    from bollydog.reload.handoff import supervised

    if reload and not supervised():
        from bollydog.reload.supervisor import supervise

        sys.exit(supervise())

    async def main() -> None:
        composition = build(config, include=_split(include), exclude=_split(exclude))
        watching = _start_watching(composition.hub, config) if reload else None
        try:
            status = await serve(composition.hub, on_force=exit_soon, on_started=watching)
        finally:
            _stop_watching()
        if status != EXIT_STOPPED:
            # Forced: leaving asyncio.run normally would wait for every task still running and
            # every thread of the default executor; the point of forcing is not to.
            exit_now(status)

    run(main)


@cli.command()
@_config_option
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
    help="stdio for an agent that launches this command; http: streamable HTTP at /mcp "
    "(BOLLYDOG_MCP_SERVICE_HOST/_PORT, default 127.0.0.1:8002).",
)
@_include_option
@_exclude_option
def mcp(config: str | None, transport: str, include: str, exclude: str) -> None:
    """Serve every Command as an MCP tool (see docs/mcp.md) until stopped."""

    async def main() -> None:
        from bollydog.entrypoint.mcp.cli import serve_mcp  # needs the mcp extra

        await serve_mcp(config, transport=transport, include=_split(include), exclude=_split(exclude))

    run(main)


_watchers: list[Any] = []


def _start_watching(hub: Any, config: str | None, on_swap: Callable[[], None] | None = None) -> Callable[[], None]:
    """What ``on_started`` runs under ``--reload``: watch, and tell a supervisor we are ready.
    ``on_swap()`` runs after each swap (the shell refreshes its namespace)."""
    import asyncio

    from bollydog.reload.handoff import announce, supervised
    from bollydog.reload.swap import CodeSwap
    from bollydog.reload.watch import watch

    try:
        import watchfiles  # noqa: F401
    except ImportError:
        fail("--reload needs watchfiles: pip install 'bollydog[reload]'", EXIT_BAD_INPUT)
    swap = CodeSwap(hub, Path(config) if config else None)
    if on_swap is not None:
        swap.listeners.append(on_swap)

    def on_restart(reason: str) -> None:
        if supervised():
            announce("restart", reason=reason)
        else:
            log.warning("reload: %s; restart this process to apply it", reason)

    def started() -> None:
        _watchers.append(asyncio.ensure_future(watch(swap, on_restart)))
        announce("ready")

    return started


def _stop_watching() -> None:
    while _watchers:
        _watchers.pop().cancel()


@cli.command()
@_config_option
@_include_option
@_exclude_option
@_reload_option
def shell(config: str | None, include: str, exclude: str, reload: bool) -> None:
    """An interactive ptpython shell with a running hub; top-level await works."""
    from bollydog.cli.shell import run_shell

    run_shell(
        config, include=_split(include), exclude=_split(exclude),
        on_started=(lambda hub, refresh: _start_watching(hub, config, refresh)()) if reload else None,
    )


@cli.command(name="ls")
@_config_option
@_include_option
@_exclude_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(config: str | None, include: str, exclude: str, as_json: bool) -> None:
    """List domains, messages and their handlers, entrypoints and schedules.
    --include/--exclude: what the process started with them would run."""
    from bollydog.bootstrap import build
    from bollydog.service.builtins import describe_messages

    try:
        composition = build(config, include=_split(include), exclude=_split(exclude), consumers=False)
        entrypoints = [_describe_entrypoint(e) for e in composition.entrypoints]
    except BollydogError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    hub = composition.hub
    domains = [
        {"domain": app.domain, "app": f"{type(app).__module__}.{type(app).__qualname__}",
         "name": app.name, "handlers": app.handlers}
        for app in hub.apps.values()
    ]
    messages = describe_messages(hub.registry)
    schedules = [entry.describe() for scheduler in composition.schedulers for entry in scheduler.planned]
    if as_json:
        listing = {"domains": domains, "messages": messages, "entrypoints": entrypoints, "schedules": schedules}
        click.echo(json.dumps(listing, indent=2))
        return
    click.echo("DOMAINS")
    for d in domains:
        click.echo(f"  {d['domain']:<16} {d['app']}  ({', '.join(d['handlers']) or 'no handler modules'})")
    click.echo("MESSAGES")
    for m in messages:
        click.echo(f"  {m['kind']:<8} {m['message']:<32} {m['class']}")
        for handler in m["handlers"] or ["(no handler)"]:
            click.echo(f"  {'':<8} {'':<32}   -> {handler}")
    if entrypoints:
        click.echo("ENTRYPOINTS")
    for e in entrypoints:
        click.echo(f"  {e['entrypoint']:<16} {e['url'] or ''}" + (f"  (MCP at {e['mcp']})" if e.get("mcp") else ""))
        for route in e.get("routes", []):
            click.echo(f"  {'':<16}   {','.join(route['methods']):<9} {' '.join(route['paths']):<40} {route['message']}")
    if schedules:
        click.echo("SCHEDULES")
    for sched in schedules:
        where = "" if sched["runs_here"] else f"  (runs where {sched['domain']} runs)"
        click.echo(f"  {sched['schedule']:<24} {sched['trigger']:<32} {sched['message']}{where}")


def _describe_entrypoint(entrypoint: Any) -> dict[str, Any]:
    """An entrypoint for ``ls``: its class, address and (HTTP) routes, without starting it."""
    described: dict[str, Any] = {
        "entrypoint": type(entrypoint).__name__,
        "class": f"{type(entrypoint).__module__}.{type(entrypoint).__qualname__}",
        "url": getattr(entrypoint, "url", None),
    }
    settings = getattr(entrypoint, "settings", None)
    if settings is not None and hasattr(settings, "router_mapping"):
        from bollydog.entrypoint.http.routes import build_routes

        described["routes"] = [
            {"message": spec.key, "methods": list(spec.methods), "paths": spec.paths}
            for spec in build_routes(entrypoint.hub.registry, settings)
        ]
        if getattr(settings, "mcp_path", None):
            described["mcp"] = f"{described['url']}{settings.mcp_path}"
    return described


@cli.command()
@_config_option
@_include_option
@_exclude_option
@click.option("--traces", type=click.Path(exists=True, dir_okay=False), default=None,
              help="OTLP JSON traces (one document a line, the Collector's file exporter): count each "
              "edge and add the sends only the traces show.")
def graph(config: str | None, include: str, exclude: str, traces: str | None) -> None:
    """Print the message flow as a Mermaid flowchart: messages, handlers, what each handler
    sends, grouped by domain. --include/--exclude pick the domains this process runs."""
    from collections.abc import Mapping

    from bollydog.bootstrap import build
    from bollydog.graph import message_flow, observed_sends, to_mermaid
    from bollydog.handlers import Handler, discover

    try:
        observed: Mapping[tuple[str, str], int] = {}
        if traces is not None:
            with open(traces, encoding="utf-8") as lines:
                observed = observed_sends(lines)
        composition = build(  # entrypoints made, not started: their settings are checked too
            config, include=_split(include), exclude=_split(exclude), consumers=False
        )
        hub = composition.hub
        declared = hub.registry.domains()
        elsewhere: dict[str, list[Handler]] = {}
        for key, section in composition.config.items():
            domain = section.get("domain", key) if isinstance(section, Mapping) else key
            if domain in declared and domain not in hub.apps and isinstance(section, Mapping):
                modules = section.get("handlers") or []
                elsewhere[domain] = [h for module in modules for h in discover(module)]
    except BollydogError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    where = {d: "runs here" for d in hub.apps if d != "bollydog"}
    where.update({d: "runs elsewhere" for d in elsewhere})
    click.echo(to_mermaid(message_flow(hub.registry, where, elsewhere, observed)), nl=False)


@cli.group()
def docs() -> None:
    """Print the generated API documents (JSON on stdout)."""


@docs.command(name="asyncapi")
@_config_option
@_include_option
@_exclude_option
@click.option("--title", default="bollydog", show_default=True, help="info.title of the document.")
@click.option("--version", "doc_version", default="0.1.0", show_default=True, help="info.version of the document.")
def docs_asyncapi(config: str | None, include: str, exclude: str, title: str, doc_version: str) -> None:
    """The AsyncAPI 3.0 document of the transport's streams and messages (see docs/flow.md)."""
    from bollydog.bootstrap import build
    from bollydog.entrypoint.kit.asyncapi import build_asyncapi

    try:
        composition = build(
            config, include=_split(include), exclude=_split(exclude), consumers=False
        )
        document = build_asyncapi(composition.hub, title=title, version=doc_version)
    except BollydogError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@docs.command(name="openapi")
@_config_option
@_include_option
@_exclude_option
def docs_openapi(config: str | None, include: str, exclude: str) -> None:
    """The OpenAPI 3.1 document the config's HTTP section serves at /openapi.json."""
    from bollydog.bootstrap import build
    from bollydog.entrypoint.http.openapi import build_openapi
    from bollydog.entrypoint.http.routes import build_routes

    try:
        composition = build(config, include=_split(include), exclude=_split(exclude), consumers=False)
        http = [e for e in composition.entrypoints if hasattr(getattr(e, "settings", None), "router_mapping")]
        if not http:
            fail("the config has no HTTP section: add one with 'app: !module bollydog.entrypoint.http.app.HttpService'",
                 EXIT_BAD_INPUT)
        service: Any = http[0]
        settings = service.settings
        document = build_openapi(
            build_routes(composition.hub.registry, settings), title=settings.title, version=settings.version,
            auth=service.auth.enabled,
        )
    except BollydogError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@cli.group()
def deadletters() -> None:
    """Inspect and replay the Redis transport's dead letters (see docs/distribute.md)."""


def _dead_letter_transport(config: str | None) -> Any:
    from bollydog.bootstrap import build
    from bollydog.hub.transport import DeadLetterStore

    try:
        transport = build(config, entrypoints=False).hub.transport
    except BollydogError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if not isinstance(transport, DeadLetterStore):
        fail(
            "the config has no transport with dead letters: add a section with "
            "'app: !module bollydog.transport.redis.RedisTransport'",
            EXIT_BAD_INPUT,
        )
    return transport


@deadletters.command(name="list")
@_config_option
@click.option("--count", default=100, show_default=True, help="At most this many, oldest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, every field.")
def deadletters_list(config: str | None, count: int, as_json: bool) -> None:
    """List dead letters, one a line: id, time, message name, stream, reason. The id is the
    dead letter's own (what 'replay --id' takes), not the id the entry had on its stream
    (that one is the dl_entry field of --json)."""
    import datetime

    transport = _dead_letter_transport(config)

    async def main() -> list[dict[str, str]]:
        try:
            entries: list[dict[str, str]] = await transport.dead_letters(count)
            return entries
        finally:
            await transport.close()

    entries = run(main)
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry, ensure_ascii=False))
            continue
        when = datetime.datetime.fromtimestamp(float(entry.get("dl_time") or 0)).isoformat(timespec="seconds")
        click.echo(
            f"{entry['dl_id']}  {when}  {entry.get('name', '?')}  {entry.get('dl_stream', '?')}  "
            f"{entry.get('dl_reason', '')}"
        )
    if not as_json:
        click.echo(f"{len(entries)} dead letter(s)", err=True)


@deadletters.command(name="replay")
@_config_option
@click.option(
    "--id", "ids", multiple=True,
    help="Dead letter id (from 'list'; the entry's former id on its stream, dl_entry, works too); repeat for several.",
)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def deadletters_replay(config: str | None, ids: tuple[str, ...], replay_all: bool) -> None:
    """Put dead letters back on the stream they came from, and remove them from the dead letters."""
    if not ids and not replay_all:
        fail("give --id ID (repeatable) or --all", EXIT_BAD_INPUT)
    transport = _dead_letter_transport(config)

    async def main() -> tuple[list[str], dict[str, list[str]]]:
        try:
            if replay_all:
                done: list[str] = await transport.replay(None)
                return done, {}
            letters: list[dict[str, str]] = await transport.dead_letters(_EVERY_DEAD_LETTER)
            wanted, sources = _dead_letter_ids(ids, letters)
            done = await transport.replay(wanted) if wanted else []
            return done, sources
        finally:
            await transport.close()

    replayed, sources = run(main)
    click.echo(f"replayed {len(replayed)} dead letter(s)")
    for source, letters in sources.items():
        if len(letters) == 1 and letters[0] in replayed:
            click.echo(f"{source} was the entry's id on its stream; its dead letter was {letters[0]}", err=True)
    problems = []
    for wanted in ids:
        letters = sources.get(wanted, [wanted])
        if len(letters) > 1:
            problems.append(f"{wanted} was the id of several entries (on different streams): "
                            f"give one of the dead letter ids {', '.join(letters)}")
        elif letters[0] not in replayed:
            problems.append(f"not found among the dead letters: {wanted} "
                            "(ids are those of 'bollydog deadletters list')")
    if problems:
        fail("; ".join(problems), EXIT_HANDLER_FAILED)


#: How many dead letters ``replay --id`` looks through for an entry's former id (more than the
#: default ``deadletter_maxlen``).
_EVERY_DEAD_LETTER = 1_000_000


def _dead_letter_ids(ids: tuple[str, ...], letters: list[dict[str, str]]) -> tuple[list[str], dict[str, list[str]]]:
    """The dead letter ids to replay for ``ids``, each a dead letter's id or the id its entry had
    on its stream (``dl_entry``, what the worker's log also names); and, for the latter, the
    dead letters it names (several: an ambiguous id, replayed only by a dead letter id)."""
    own = {letter["dl_id"] for letter in letters}
    wanted: list[str] = []
    sources: dict[str, list[str]] = {}
    for given in ids:
        if given in own:
            wanted.append(given)
            continue
        matches = [letter["dl_id"] for letter in letters if letter.get("dl_entry") == given]
        if matches:
            sources[given] = matches
            if len(matches) == 1:
                wanted.append(matches[0])
    return wanted, sources


from bollydog.rules.cli import rules as _rules  # noqa: E402  (its own module: imports at call time)

cli.add_command(_rules)
from bollydog.cli.sagas import sagas  # noqa: E402  (the durable-runs verbs: bollydog/cli/sagas.py)

cli.add_command(sagas)


def main() -> None:
    cli(prog_name="bollydog")


if __name__ == "__main__":  # pragma: no cover
    main()
