"""``bollydog rules explain``: why rules fired, and where a rule that does not fire stops."""

from __future__ import annotations

from typing import Any

import click

from bollydog.cli.exits import EXIT_BAD_INPUT, fail, fail_with, run
from bollydog.encoding import dumps_text, jsonable


@click.group()
def rules() -> None:
    """Inspect the rules service (see docs/rules.md)."""


@rules.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), required=True,
              help="Configuration file with a RulesService domain.")
@click.option("--rule", default=None, help="One rule's name (default: every rule).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
def explain(config: str, rule: str | None, as_json: bool) -> None:
    """Load the state into the rules' network and say, per rule, what matches now, what each
    pattern lets through, and what this process fired. Fires nothing."""
    from bollydog.bootstrap import build
    from bollydog.rules.messages import Explain
    from bollydog.rules.service import RulesService

    async def main() -> dict[str, Any]:
        hub = build(config, entrypoints=False).hub
        async with hub:
            if not any(isinstance(app, RulesService) for app in hub.apps.values()):
                fail(f"{config} has no RulesService domain (domains: {', '.join(hub.apps) or 'none'}); "
                     "add one with 'app: !module bollydog.rules.service.RulesService'", EXIT_BAD_INPUT)
            try:
                result: dict[str, Any] = await hub.execute(Explain(rule=rule))
            except Exception as exc:
                fail_with(exc)
            return result

    result = jsonable(run(main))
    if as_json:
        click.echo(dumps_text(result))
        return
    click.echo(f"{result['facts']} objects, {result['alpha_nodes']} alpha nodes")
    for described in result["rules"]:
        matches = described["matches"]
        waiting = sum(1 for m in matches if m["pending"])
        click.echo(f"rule {described['rule']} (salience {described['salience']}): "
                   f"{len(matches)} match(es) now, {waiting} waiting to fire")
        for pattern in described["patterns"]:
            click.echo(f"  {pattern['pattern']}\n    {pattern['objects']} object(s) selected; "
                       f"{pattern['partial_matches_out']} of {pattern['partial_matches_in']} partial match(es) pass")
        for match in matches:
            facts = ", ".join(f"{f['kind']}/{f['key']}@{f['version']}" for f in match["facts"])
            click.echo(f"  match: {facts} {match['bindings']}{' (waiting)' if match['pending'] else ''}")
    fired = result["fired"]
    click.echo(f"fired in this process: {len(fired)}")
    for firing in fired:
        click.echo(f"  {firing['rule']}: " + "; ".join(firing["why"]))
