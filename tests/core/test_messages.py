import asyncio
import json

import pytest

from bollydog.context import current_session, handler_frame, remote_parent
from bollydog.errors import InvalidMessageError, ReservedFieldError
from bollydog.models.base import RESERVED_FIELDS, BaseDomain, Command, Event, Session
from bollydog.settings import reload_settings
from tests.core.sample_messages import Add


class Renamed(Command):
    name = "custom-name"
    domain = "shop"


class Child(Add):
    pass


def test_name_and_domain_defaults_are_per_class():
    assert Add.name == "add"
    assert Child.name == "child"
    assert Add.domain == "tests"
    assert (Renamed.name, Renamed.domain) == ("custom-name", "shop")


@pytest.mark.parametrize("field", sorted(RESERVED_FIELDS | {"name", "domain", "state"}))
def test_declaring_a_reserved_field_fails_at_class_definition(field):
    with pytest.raises(ReservedFieldError, match=f"Bad.{field}"):
        type("Bad", (Command,), {"__annotations__": {field: str}, "__module__": __name__})


def test_assigning_a_reserved_field_points_to_the_class_default():
    with pytest.raises(ReservedFieldError, match="default_expire_time"):
        type("Bad", (Command,), {"expire_time": 3, "__module__": __name__})


def test_ids_have_w3c_shapes_and_are_unique():
    messages = [Add(a=1, b=2) for _ in range(1000)]
    assert len({m.iid for m in messages}) == 1000
    assert len({m.trace_id for m in messages}) == 1000
    for m in messages[:10]:
        assert len(m.trace_id) == 32 and int(m.trace_id, 16)
        assert len(m.span_id) == 16 and int(m.span_id, 16)
        assert m.parent_span_id is None


def test_round_trip_through_dump_and_json():
    original = Add(a=1, b=2, priority=5, expire_time=3)
    assert Add.model_validate(original.model_dump()) == original
    assert Add.model_validate_json(original.model_dump_json()) == original
    assert "state" not in json.loads(original.model_dump_json())


def test_round_trip_keeps_equality_after_a_result_was_set():
    message = Add(a=1, b=2)
    message.set_result(3)
    assert Add.model_validate(message.model_dump()) == message


def test_message_created_inside_a_handler_joins_the_parents_trace():
    parent = Add(a=1, b=1, priority=7)
    token = handler_frame.set((parent, None, None, None))
    try:
        child = Add(a=2, b=2)
    finally:
        handler_frame.reset(token)
    assert child.trace_id == parent.trace_id
    assert child.parent_span_id == parent.span_id
    assert child.span_id != parent.span_id
    assert child.priority == 7


def test_incoming_traceparent_is_the_parent_of_a_top_level_message():
    token = remote_parent.set(("ab" * 16, "cd" * 8))
    try:
        message = Add(a=1, b=1)
    finally:
        remote_parent.reset(token)
    assert (message.trace_id, message.parent_span_id) == ("ab" * 16, "cd" * 8)


def test_created_by_comes_from_the_session():
    token = current_session.set(Session(username="alice"))
    try:
        assert Add(a=1, b=1).created_by == "alice"
    finally:
        current_session.reset(token)
    assert Add(a=1, b=1).created_by is None


def test_expire_time_class_default_env_default_and_instance_override(monkeypatch):
    class Slow(Command):
        default_expire_time = 120

    class Fact(Event):
        pass

    monkeypatch.setenv("BOLLYDOG_COMMAND_EXPIRE_TIME", "7")
    monkeypatch.setenv("BOLLYDOG_EVENT_EXPIRE_TIME", "9")
    reload_settings()
    try:
        assert Add(a=1, b=1).expire_time == 7
        assert Fact().expire_time == 9
        assert Slow().expire_time == 120
        assert Add(a=1, b=1, expire_time=0.5).expire_time == 0.5
    finally:
        monkeypatch.delenv("BOLLYDOG_COMMAND_EXPIRE_TIME")
        monkeypatch.delenv("BOLLYDOG_EVENT_EXPIRE_TIME")
        reload_settings()
    assert Add(a=1, b=1).expire_time == 60


def test_delivery_fields_are_validated():
    with pytest.raises(ValueError):
        Add(a=1, b=1, delivery_count=0)
    with pytest.raises(ValueError):
        Add(a=1, b=1, qos=3)
    with pytest.raises(ValueError):
        Add(a=1, b=1, trace_id="not-hex")


def test_from_input_refuses_identity_and_trace_fields_and_names_bad_fields():
    with pytest.raises(InvalidMessageError) as info:
        Add.from_input({"a": 1, "b": 2, "trace_id": "ab" * 16, "iid": "x"})
    assert {e["field"] for e in info.value.errors} == {"trace_id", "iid"}
    # A reserved field does not hide the other bad fields: every one is named at once.
    with pytest.raises(InvalidMessageError) as info:
        Add.from_input({"a": "x", "iid": "abc", "priority": 1000})
    assert {e["field"]: e["type"] for e in info.value.errors} == {
        "iid": "reserved", "a": "int_parsing", "b": "missing",
    }
    with pytest.raises(InvalidMessageError) as info:
        Add.from_input({"a": 1, "b": 2, "iid": "abc", "priority": 1000})
    assert {e["field"]: e["type"] for e in info.value.errors} == {"iid": "reserved", "priority": "out_of_range"}
    with pytest.raises(InvalidMessageError) as info:
        Add.from_input({"a": "x"})
    assert {e["field"]: e["type"] for e in info.value.errors} == {"a": "int_parsing", "b": "missing"}
    with pytest.raises(InvalidMessageError) as info:
        Add.from_input({"a": 1, "b": 2, "c": 3})
    assert info.value.errors[0]["field"] == "c"
    assert Add.from_input({"a": "1", "b": "2", "priority": 3}, strings=True).priority == 3


async def test_state_is_awaitable_before_and_after_completion():
    early = Add(a=1, b=1)
    waiter = asyncio.ensure_future(early.state)
    early.set_result(2)
    assert await waiter == 2

    late = Add(a=1, b=1)
    late.set_exception(KeyError("gone"))
    with pytest.raises(KeyError):
        await late.state


async def test_stream_yields_partials_then_ends():
    message = Add(a=1, b=1)
    seen = []

    async def listen():
        async for item in message.stream():
            seen.append(item)

    listener = asyncio.ensure_future(listen())
    await asyncio.sleep(0)
    message.emit_partial(1)
    message.emit_partial(2)
    message.set_result(3)
    await asyncio.wait_for(listener, 1)
    assert seen == [1, 2]


def test_domain_objects_collect_raised_events():
    class Placed(Event):
        order: str

    order = BaseDomain()
    order.raise_event(Placed(order=order.iid))
    assert [e.order for e in order.collect_events()] == [order.iid]
    assert order.collect_events() == []


class _Bounded(Command):
    n: int = 0
    items: list[int] = []


def test_untrusted_input_cannot_ask_for_absurd_delivery_settings_or_huge_integers():
    from bollydog.errors import InvalidMessageError

    def problems(data):
        with pytest.raises(InvalidMessageError) as refused:
            _Bounded.from_input(data)
        return [(e["field"], e["type"]) for e in refused.value.errors]

    assert problems({"expire_time": 5e-324}) == [("expire_time", "out_of_range")]
    assert problems({"expire_time": 1e9}) == [("expire_time", "out_of_range")]  # beyond the class default
    assert problems({"priority": 10**6}) == [("priority", "out_of_range")]
    assert problems({"n": 2**70}) == [("n", "int_out_of_range")]
    assert problems({"items": [1, -(2**64)]}) == [("items.1", "int_out_of_range")]
    assert problems({"n": "99999999999999999999999"}) == [("n", "int_out_of_range")]  # text, as in a query
    accepted = _Bounded.from_input({"n": 2**63 - 1, "expire_time": 2, "priority": -100})
    assert (accepted.n, accepted.expire_time, accepted.priority) == (2**63 - 1, 2.0, -100)


def test_a_flood_of_bad_fields_gets_a_short_answer():
    from bollydog.errors import InvalidMessageError

    with pytest.raises(InvalidMessageError) as refused:
        _Bounded.from_input({f"unknown{i}": i for i in range(10_000)})
    errors = refused.value.errors
    assert len(errors) == InvalidMessageError.max_errors + 1
    assert errors[-1] == {"field": "__more__", "message": "9950 more problem(s) not listed", "type": "truncated"}
    assert len(str(refused.value)) < 1000


def test_text_nested_beyond_what_json_follows_is_a_field_error():
    from bollydog.errors import InvalidMessageError

    deep = "[" * 3000 + "]" * 3000
    with pytest.raises(InvalidMessageError) as refused:
        _Bounded.from_input({"items": deep}, strings=True)
    assert [e["field"] for e in refused.value.errors] == ["items"]


def test_from_input_refuses_a_boolean_for_a_number_field_as_the_schema_says() -> None:
    from bollydog.errors import InvalidMessageError

    class Measure(Command):
        ratio: float = 0.0
        count: int = 0

    for data, field, expected in (({"ratio": True}, "ratio", "a number"), ({"count": False}, "count", "an integer"),
                                  ({"expire_time": True}, "expire_time", "a number")):
        with pytest.raises(InvalidMessageError) as refused:
            Measure.from_input(data)
        assert [(e["field"], e["message"]) for e in refused.value.errors] == [(field, f"must be {expected}, not a boolean")]
    assert Measure.from_input({"ratio": 1, "count": 2}).ratio == 1.0  # an integer is a number
