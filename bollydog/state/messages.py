"""The state service's messages: its Commands, and the Event every change publishes.

Their domain is the config key of the app serving them (``state`` in the docs): ``state.get``,
``state.list``, ``state.put``, ``state.delete``, ``state.changes``, ``state.watch``, and the
Event ``state.statechanged``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from bollydog.models.base import Command, Event
from bollydog.state.objects import StateObject
from bollydog.state.selectors import check_labels

Selector = str | dict[str, Any]

_SELECTOR_HELP = (
    "Label selector: 'env=prod,tier in (web,api),!canary', or "
    "{matchLabels: {...}, matchExpressions: [...]}; empty selects all"
)


class StateChanged(Event):
    """An object was added, modified or deleted; published after the change committed."""

    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: StateObject = Field(description="The object after the change (for DELETED: as it was, at the deletion's version).")
    previous: StateObject | None = Field(None, description="The object before the change (None for ADDED).")


class GetObject(Command):
    """One object by kind and key (404 when there is none)."""

    name = "get"
    mcp_annotations = {"readOnlyHint": True}
    kind: str
    key: str


class ListObjects(Command):
    """The objects of a kind (every kind when empty) that a label selector selects, and the
    version to watch from."""

    name = "list"
    mcp_annotations = {"readOnlyHint": True}
    kind: str | None = None
    selector: Selector = Field("", description=_SELECTOR_HELP)


class PutObject(Command):
    """Create or replace an object. ``expected_version``: 0 creates only, n replaces version n
    only (409 otherwise); unset writes whatever is stored."""

    name = "put"
    kind: str
    key: str
    labels: dict[str, str] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict)
    expected_version: int | None = Field(None, ge=0)

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)


class DeleteObject(Command):
    """Delete an object (404 when there is none; 409 when ``expected_version`` differs)."""

    name = "delete"
    kind: str
    key: str
    expected_version: int | None = Field(None, ge=0)


class ListChanges(Command):
    """Changes after ``since_version`` of the objects selected (410 when no longer kept)."""

    name = "changes"
    mcp_annotations = {"readOnlyHint": True}
    since_version: int = Field(ge=0)
    kind: str | None = None
    selector: Selector = Field("", description=_SELECTOR_HELP)


class WatchObjects(Command):
    """Stream changes of the objects selected as partial results ``{"type", "object"}``.

    Without ``since_version``: first every current object as ADDED, then the changes. With it:
    the changes after that version (410 when the store no longer keeps them: list again). Ends
    after ``timeout`` seconds or ``limit`` changes.
    """

    name = "watch"
    mcp_annotations = {"readOnlyHint": True}
    default_expire_time = 3600.0
    kind: str | None = None
    selector: Selector = Field("", description=_SELECTOR_HELP)
    since_version: int | None = Field(None, ge=0)
    timeout: float = Field(30.0, gt=0, le=3600)
    limit: int | None = Field(None, ge=1)
