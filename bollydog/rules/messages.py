"""The rules service's commands: ``rules.explain``, ``rules.list``, ``rules.sync``."""

from __future__ import annotations

from pydantic import Field

from bollydog.models.base import Command


class Explain(Command):
    """Why rules fired: the recent firings (facts, versions, variables, each pattern's part),
    and what waits on the agenda. Never fires anything itself."""

    name = "explain"
    mcp_annotations = {"readOnlyHint": True}
    rule: str | None = Field(None, description="One rule's name; every rule when empty.")


class ListRules(Command):
    """The rules: name, salience, patterns."""

    name = "list"
    mcp_annotations = {"readOnlyHint": True}


class Sync(Command):
    """Load the state service's objects now and fire what matches (otherwise done at the first
    change the service publishes)."""

    name = "sync"
