"""What the state service stores: labelled objects with a resource version, and their changes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bollydog.errors import DomainError
from bollydog.state.selectors import check_labels

__all__ = [
    "Change",
    "ChangeType",
    "ConflictError",
    "InvalidObjectError",
    "ObjectNotFoundError",
    "StateObject",
    "WatchExpiredError",
]

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]


class StateObject(BaseModel):
    """One object: ``kind`` and ``key`` name it, ``labels`` select it, ``spec`` is its content.

    ``version`` is the resource version of its last change: a number that grows with every
    change in the store (across kinds), 0 for an object never stored.
    """

    model_config = ConfigDict(frozen=True)

    kind: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict)
    version: int = 0

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return check_labels(labels)

    @property
    def ref(self) -> tuple[str, str]:
        """``(kind, key)``: what names the object across its versions."""
        return (self.kind, self.key)


class Change(BaseModel):
    """One change of the store: the object as it is after it (as it was, for ``DELETED``, with
    the version of the deletion)."""

    type: ChangeType
    object: StateObject

    @property
    def version(self) -> int:
        return self.object.version


class ConflictError(DomainError):
    """A write expected another resource version than the stored one: read again, then retry."""

    status_code = 409
    exit_code = 3

    def __init__(self, kind: str, key: str, expected: int, actual: int) -> None:
        stored = f"version {actual}" if actual else "no object"
        super().__init__(
            f"{kind}/{key}: expected version {expected}, the store has {stored}; get it again and retry",
            kind=kind, key=key, expected_version=expected, actual_version=actual,
        )


class ObjectNotFoundError(DomainError, LookupError):
    """No object of that kind and key."""

    status_code = 404
    exit_code = 4

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} named {key!r}", kind=kind, key=key)


class WatchExpiredError(DomainError):
    """A watch asked for changes older than the store keeps: list again, then watch from the
    version the list returned (Kubernetes' 410 Gone)."""

    status_code = 410
    exit_code = 5

    def __init__(self, since: int, oldest: int) -> None:
        super().__init__(
            f"changes since version {since} are no longer kept (the oldest kept follows version "
            f"{oldest}); list again and watch from the version the list returns",
            since_version=since, oldest_version=oldest,
        )


class InvalidObjectError(DomainError, ValueError):
    """An object's kind is not served or its spec does not fit the kind's model."""

    status_code = 422
    exit_code = 2

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, errors=errors or [])
