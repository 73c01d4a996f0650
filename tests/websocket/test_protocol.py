"""The wire protocol's pure parts: frame parsing, topic patterns, the message allow-list."""

from __future__ import annotations

import pytest

from bollydog.entrypoint.websocket.protocol import (
    InvalidFrameError,
    MessageFilter,
    decode,
    parse_frame,
    peek_id,
    topic_matches,
    validate_topic,
)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("example.*", "example.taskcount", True),
        ("example.*", "example", False),
        ("example.*", "example.a.b", False),
        ("*.taskcount", "bollydog.taskcount", True),
        ("#", "example.taskcount", True),
        ("#", "example", True),
        ("example.#", "example.taskcount", True),
        ("example.#", "example", True),
        ("example.#", "shop.taskcount", False),
        ("#.placed", "shop.order.placed", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("example.taskcount", "example.taskcount", True),
        ("example.taskcount", "example.tasklist", False),
        ("#.#", "a.b", True),
        ("#.*.#", "a", True),
        ("#.*.#", "", True),
        ("*.#.*", "a", False),
        ("#." * 5000 + "b", "a.b", True),
        ("#." * 5000 + "x", "a.b", False),
    ],
)
def test_topic_matches(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("pattern", ["", "a..b", "a.b*", "a b", "#x", "."])
def test_invalid_topic_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidFrameError):
        validate_topic(pattern)


def test_message_filter_include_then_exclude() -> None:
    allowed = MessageFilter(include=["shop.*", "bollydog.taskcount"], exclude=["shop.secret*"])
    assert allowed.allows("shop.placeorder")
    assert allowed.allows("bollydog.taskcount")
    assert not allowed.allows("bollydog.tasklist")
    assert not allowed.allows("shop.secretthing")
    assert MessageFilter().allows("anything.at_all")
    assert not MessageFilter(exclude=["Shop.*"]).allows("shop.secretthing")
    assert not MessageFilter(include=["shop.*"]).allows("Other.thing")
    assert MessageFilter(include=["shop.*"]).allows("Shop.Thing")


def test_request_frame_splits_envelope_from_fields() -> None:
    frame = parse_frame({"name": "echo", "id": 7, "traceparent": "tp", "text": "x", "times": 2})
    assert (frame.type, frame.id, frame.name, frame.traceparent) == ("request", 7, "echo", "tp")
    assert frame.fields == {"text": "x", "times": 2}


@pytest.mark.parametrize(
    "raw",
    [
        [],
        "echo",
        {"id": 1},
        {"name": ""},
        {"name": 5},
        {"name": "echo", "id": {"x": 1}},
        {"name": "echo", "id": True},
        {"name": "echo", "id": float("nan")},
        {"name": "echo", "type": ["request"]},
        {"name": "echo", "traceparent": 1},
        {"type": "dance"},
        {"type": "subscribe"},
        {"type": "subscribe", "topics": []},
        {"type": "subscribe", "topics": ["a..b"]},
        {"type": "subscribe", "topics": ["a"], "extra": 1},
    ],
)
def test_malformed_frames(raw: object) -> None:
    with pytest.raises(InvalidFrameError):
        parse_frame(raw)


def test_decode_and_peek_id() -> None:
    with pytest.raises(InvalidFrameError):
        decode("{nope")
    with pytest.raises(InvalidFrameError):
        decode(b"\xff\xfe")
    assert peek_id({"id": "a"}) == "a"
    assert peek_id({"id": [1]}) is None
    assert peek_id([1]) is None


def test_frames_with_nan_or_infinity_are_valid_json() -> None:
    import json as strict_json

    from bollydog.entrypoint.websocket.protocol import encode

    def refuse(constant: str) -> None:
        raise ValueError(f"invalid JSON constant {constant}")

    text = encode({"type": "result", "id": 1, "data": {"ratio": float("nan"), "max": float("inf")}})
    assert strict_json.loads(text, parse_constant=refuse) == {
        "type": "result", "id": 1, "data": {"ratio": None, "max": None}
    }
