"""One text value for a list/set/tuple field is a one-element list: CLI flags, query strings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional, Sequence

import httpx
import pytest
from click.testing import CliRunner
from pydantic import Field

from bollydog.cli.main import cli
from bollydog.entrypoint.http.app import HttpService
from bollydog.errors import InvalidMessageError
from bollydog.models.base import Command
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.cli_surface.lots_handlers import Park


class Shapes(Command):
    domain = "shapes"
    maybe: Optional[list[int]] = None
    union: list[str] | None = None
    annotated: Annotated[tuple[str, ...], Field(max_length=3)] = ()
    seq: Sequence[str] = ()
    either: list[str] | str = ""
    text: str = ""
    table: dict[str, int] = {}


def test_one_value_is_a_one_element_collection() -> None:
    park = Park.from_input({"plates": "A", "spots": "3"}, strings=True)
    assert park.plates == ["A"] and park.spots == {3}
    shapes = Shapes.from_input(
        {"maybe": "7", "union": "u", "annotated": "a", "seq": "s", "either": "e", "text": "[t"}, strings=True
    )
    assert (shapes.maybe, shapes.union, shapes.annotated, list(shapes.seq)) == ([7], ["u"], ("a",), ["s"])
    assert shapes.either == "e" and shapes.text == "[t"  # text is a valid value as it is


def test_json_text_keeps_its_meaning() -> None:
    park = Park.from_input({"plates": '["A", "B"]', "spots": "[1, 2]", "note": "[x"}, strings=True)
    assert park.plates == ["A", "B"] and park.spots == {1, 2} and park.note == "[x"
    with pytest.raises(InvalidMessageError) as malformed:  # opens a JSON list: never one odd plate
        Park.from_input({"plates": "[A, B]"}, strings=True)
    assert [e["field"] for e in malformed.value.errors] == ["plates"]
    assert Park.from_input({"plates": "A]"}, strings=True).plates == ["A]"]
    assert Shapes.from_input({"table": '{"a": 1}'}, strings=True).table == {"a": 1}
    with pytest.raises(InvalidMessageError) as caught:
        Shapes.from_input({"table": "a"}, strings=True)
    assert [e["field"] for e in caught.value.errors] == ["table"]  # a mapping stays strict
    # Not text (JSON bodies): untouched, so a wrong type is still refused.
    with pytest.raises(InvalidMessageError):
        Park.from_input({"plates": "A"})


def test_cli_flag_given_once(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("lots:\n  handlers: [tests.cli_surface.lots_handlers]\n")
    args = ["execute", "--config", str(config), "--message", "lots.park", "--plates=A", "--spots", "4"]
    once = CliRunner().invoke(cli, args)
    assert once.exit_code == 0, once.output
    assert json.loads(once.stdout) == {"plates": ["A"], "spots": [4], "note": ""}
    twice = CliRunner().invoke(cli, [*args, "--plates=B"])
    assert json.loads(twice.stdout)["plates"] == ["A", "B"]


async def test_query_string_given_once() -> None:
    hub = HubService(apps=[AppService(domain="lots", name="svc", handlers=["tests.cli_surface.lots_handlers"])])
    http = hub.add_entrypoint(HttpService(port=0, router_mapping={"lots.park": {"methods": ["GET"]}}))
    async with hub, httpx.AsyncClient(base_url=http.url, timeout=10) as client:
        once = await client.get("/lots/svc/park", params={"plates": "A"})
        assert once.status_code == 200, once.text
        assert once.json() == {"plates": ["A"], "spots": [], "note": ""}
        twice = await client.get("/lots/svc/park", params=[("plates", "A"), ("plates", "B")])
        assert twice.json()["plates"] == ["A", "B"]
