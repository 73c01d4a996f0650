"""The transport contract: what every transport must do, whatever carries its messages.

:class:`TransportContract` is run once per implementation (``tests/transport/test_contract.py``:
``TestMemory`` over a :class:`~bollydog.testing.MemoryBroker`, ``TestRedis`` over a real Redis),
like faststream's shared broker test cases. Each test gets a ``deployment``
(:mod:`tests.transport.deployments`): processes built by the composition root, sharing one
server, and a raw view of that server. Only options every transport takes are used here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest

from bollydog.context import current_session, remote_parent
from bollydog.errors import (
    ConfigError,
    HandlerTimeoutError,
    NoConsumerError,
    RemoteHandlerError,
    TransportError,
    describe,
)
from bollydog.hub.hooks import Completion, DeadLetter
from bollydog.models.base import Session
from bollydog.transport import wire
from tests.distribute import calc_handlers as calc
from tests.distribute.conftest import wait_for
from tests.distribute.orch_handlers import Orchestrate, PausedOrchestrate
from tests.transport.deployments import Deployment

PARTIALS = [{"i": 0}, {"i": 1}, {"i": 2}, {"done": 3}]

BAD_ENTRIES = [
    ({"name": "calc.add", "payload": "{not json"}, "not JSON"),
    ({"name": "calc.nosuch", "payload": "{}"}, "unknown message 'calc.nosuch'"),
    ({"name": "os.system", "payload": '{"command": "true"}'}, "unknown message 'os.system'"),
    ({"payload": "{}"}, "missing or invalid 'name'"),
    ({"name": "calc.add", "payload": json.dumps({"a": 1, "b": 2, "iid": "0" * 32})}, "reserved fields"),
    ({"name": "calc.add", "payload": "[1, 2]"}, "must be a JSON object"),
    ({"name": "calc.noted", "kind": "command", "payload": '{"text": "x"}'}, "is not a command"),
]


async def eventually(check: Any, timeout: float = 5.0) -> Any:
    """Await ``check()`` until it returns something true (a test helper, polling)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)


class TransportContract:
    """Behaviours every transport has. Subclasses provide the ``deployment`` fixture."""

    # -- reaching the broker (readiness, start-up checks) ---------------------------------------

    async def test_probe_is_none_while_the_broker_answers(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]) as worker:
            assert await worker.transport.probe() is None

    # -- once across processes (what a schedule's tick uses) --------------------------------------

    async def test_claim_once_is_won_by_one_process_until_it_expires(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]) as first, deployment.process(["calc"]) as second:
            # A claim lasts 1 s: long enough for all 40 tries on a loaded machine.
            claims = [t.claim_once(key, 1.0) for key in ("tick:1", "tick:2") for t in (first.transport, second.transport) * 10]
            won = await asyncio.gather(*claims)
            assert won.count(True) == 2  # one per key, among 20 tries each
            assert not await second.transport.claim_once("tick:1", 1.0)
            await asyncio.sleep(1.1)  # expired: the next tick of that key may be claimed again
            assert await second.transport.claim_once("tick:1", 1.0)

    # -- request / reply -----------------------------------------------------------------------

    async def test_request_reply_returns_the_result(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]) as worker, deployment.process([]) as front:
            assert "calc" not in front.apps and front.transport.serves(calc.Add)
            assert not worker.transport.serves(calc.Add)  # hosted there, not remote
            assert await front.execute(calc.Add(a=1, b=2)) == 3
            message = await front.put_message(calc.Add(a=20, b=22))
            assert await message.state == 42
            results = await asyncio.gather(*(front.execute(calc.Add(a=i, b=i)) for i in range(50)))
            assert results == [2 * i for i in range(50)]

    async def test_remote_error_comes_back_as_its_own_class(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]), deployment.process([]) as front:
            with pytest.raises(ValueError) as boom:
                await front.execute(calc.Fail(text="boom"))
            assert type(boom.value) is ValueError and str(boom.value) == "boom"
            assert "another process" in boom.value.__notes__[0]
            message = calc.Fail(text="custom")
            with pytest.raises(calc.OutOfStock, match="no more widgets"):
                await front.execute(message)
            with pytest.raises(calc.OutOfStock):
                await message.state
            with pytest.raises(calc.Sold) as sold:
                await front.execute(calc.Fail(text="sold"))
            assert sold.value.item == "widget"
            assert describe(sold.value) == describe(calc.Sold("the last widget is sold", item="widget"))

    async def test_remote_error_of_a_class_unknown_here_answers_like_it(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]), deployment.process([]) as front:
            with pytest.raises(RemoteHandlerError) as caught:
                await front.execute(calc.Fail(text="gone"))
        remote = caught.value
        assert remote.error_type == "tests.distribute.calc_handlers._unimportable.<locals>.Gone"
        assert remote.remote_message == "that widget is gone for good"
        assert str(remote) == f"{remote.error_type}: that widget is gone for good"
        info = describe(remote)
        assert (info.status, info.code, info.exit_code) == (410, "Gone", 4)
        assert info.body() == {"error": "Gone", "message": "that widget is gone for good", "item": "widget"}

    async def test_a_reply_later_than_expire_time_is_a_timeout(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]), deployment.process([]) as front:
            started = time.monotonic()
            with pytest.raises(HandlerTimeoutError, match="within 0.3s"):
                await front.execute(calc.Slow(seconds=3, expire_time=0.3))
            assert time.monotonic() - started < 1.5

    async def test_session_and_trace_travel(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]), deployment.process([]) as front:
            session = Session(username="alice")
            token = current_session.set(session)
            parent = remote_parent.set(("ab" * 16, "cd" * 8))  # as an HTTP traceparent would
            try:
                message = calc.WhoAmI(priority=3)
                seen = await front.execute(message)
            finally:
                remote_parent.reset(parent)
                current_session.reset(token)
        assert seen["username"] == "alice" and seen["session_uid"] == session.uid
        assert seen["created_by"] == "alice"
        assert (seen["iid"], seen["trace_id"], seen["span_id"]) == (message.iid, message.trace_id, message.span_id)
        assert seen["parent_span_id"] == "cd" * 8 and seen["priority"] == 3

    async def test_orchestration_across_three_processes(self, deployment: Deployment) -> None:
        domains = ["calc", "orch"]
        async with (
            deployment.process(["calc"], domains),
            deployment.process(["orch"], domains),
            deployment.process([], domains) as front,
        ):
            token = current_session.set(Session(username="bob"))
            try:
                command = Orchestrate(a=2, b=3)
                result = await front.execute(command)
            finally:
                current_session.reset(token)
        assert result["total"] == 5 and result["caught"] == "ValueError: inner"  # thrown back in
        assert result["nested"]["username"] == "bob"
        assert result["nested"]["trace_id"] == command.trace_id
        assert result["nested"]["parent_span_id"] == command.span_id

    async def test_completions_reach_the_processes_that_listen(self, deployment: Deployment) -> None:
        domains = ["calc", "orch"]
        fast = {"notice_interval": 0.05}
        seen: list[Completion] = []
        async with (
            deployment.process(["calc"], domains, **fast) as worker,
            deployment.process(["orch"], domains, **fast) as orchestrator,
            deployment.process([], domains, **fast) as front,
        ):
            feeds = [p.transport.notices for p in (worker, orchestrator, front)]
            await front.execute(calc.Add(a=1, b=1))
            await asyncio.sleep(0.2)
            assert [f.published for f in feeds] == [0, 0, 0]  # nobody listens: nothing sent

            front.hooks.remote_completed.connect(seen.append)
            assert await eventually(lambda: _true(all(f.wanted for f in feeds[:2]) and feeds[2].listening))
            assert not feeds[2].wanted  # only the front listens: it sends nothing
            command = Orchestrate(a=2, b=3)
            await front.execute(command)
            assert await eventually(lambda: _true(any(c.topic == "orch.orchestrate" for c in seen)))
            front.hooks.remote_completed.disconnect(seen.append)
            assert await eventually(lambda: _true(not any(f.wanted for f in feeds)))
            assert feeds[2].published == 0
        by_origin = {(c.origin, c.topic) for c in seen}
        assert {(worker.transport.consumer, "calc.add"), (worker.transport.consumer, "calc.whoami"),
                (orchestrator.transport.consumer, "orch.orchestrate")} <= by_origin, by_origin
        assert front.transport.consumer not in {c.origin for c in seen}
        (add,) = [c for c in seen if c.topic == "calc.add" and c.origin == worker.transport.consumer]
        assert add.result == 5 and add.message["a"] == 2 and add.error is None
        (fail,) = [c for c in seen if c.topic == "calc.fail" and c.origin == worker.transport.consumer]
        assert fail.error is not None and "inner" in fail.error["message"]
        (orchestrated,) = [c for c in seen if c.topic == "orch.orchestrate"]
        assert orchestrated.id == command.iid and orchestrated.result["total"] == 5

    async def test_the_same_message_sent_twice_at_once_runs_once(self, deployment: Deployment) -> None:
        calc.RECORDED.clear()
        async with deployment.process(["calc"]), deployment.process([]) as front:
            message = calc.Record(tag="once")
            first, second = await asyncio.gather(front.transport.request(message), front.transport.request(message))
            assert first == second == "once"
            await asyncio.sleep(0.05)
        assert calc.RECORDED == ["once"]

    async def test_a_foreign_producer_gets_its_command_handled(self, deployment: Deployment) -> None:
        key = deployment.reply_key
        async with deployment.process(["calc"]):
            entry = await deployment.inject("calc", {
                "v": "1", "kind": "command", "name": "calc.add", "payload": json.dumps({"a": 2, "b": 5}), "reply_to": key,
            })
            traced = await deployment.inject("calc", {
                "name": "calc.whoami", "payload": "{}", "reply_to": key, "id": "c" * 32,
                "traceparent": f"00-{'1' * 32}-{'2' * 16}-01", "session": json.dumps({"username": "eve"}),
            })
            replies = {r["entry"]: r for r in await deployment.replies(key, 2)}
        first, second = replies[entry], replies[traced]
        assert first["ok"] == "1" and json.loads(first["result"]) == 7 and len(first["id"]) == 32
        seen = json.loads(second["result"])
        assert second["id"] == "c" * 32 and seen["username"] == "eve"
        assert seen["trace_id"] == "1" * 32 and seen["parent_span_id"] == "2" * 16

    async def test_an_entry_past_its_deadline_is_acknowledged_unrun(self, deployment: Deployment) -> None:
        calc.RECORDED.clear()
        key = deployment.reply_key
        async with deployment.process(["calc"]):
            await deployment.inject("calc", {
                "name": "calc.record", "payload": '{"tag": "late"}', "reply_to": key, "deadline": repr(time.time() - 1),
            })
            (reply,) = await deployment.replies(key, 1)
            assert reply["ok"] == "0" and reply["error_type"] == "bollydog.errors.HandlerTimeoutError"
            assert await eventually(lambda: _zero(deployment.pending("calc")))
        assert calc.RECORDED == []

    # -- events ----------------------------------------------------------------------------------

    async def test_events_reach_each_domain_once(self, deployment: Deployment) -> None:
        calc.NOTED.clear()
        domains = ["calc", "audit"]
        async with (
            deployment.process(["calc"], domains),
            deployment.process(["audit"], domains),
            deployment.process([], domains) as front,
        ):
            await front.execute(calc.Noted(text="hello"))
            await wait_for(lambda: len(calc.NOTED) >= 2)
            await asyncio.sleep(0.1)  # no duplicate shows up later
        assert sorted(calc.NOTED) == [("audit", "hello"), ("calc", "hello")]

    async def test_a_process_hosting_two_domains_runs_each_domains_handlers_once(self, deployment: Deployment) -> None:
        calc.NOTED.clear()
        domains = ["calc", "audit"]
        async with deployment.process(domains, domains), deployment.process([], domains) as front:
            await front.execute(calc.Noted(text="x"))
            await wait_for(lambda: len(calc.NOTED) >= 2)
            await asyncio.sleep(0.1)
        assert sorted(calc.NOTED) == [("audit", "x"), ("calc", "x")]

    async def test_events_wait_for_later_consumers(self, deployment: Deployment) -> None:
        calc.NOTED.clear()
        async with deployment.process([]) as front:
            await front.execute(calc.Noted(text="for later"))  # never refused: a fact
            assert await deployment.length("calc") == 1
            async with deployment.process(["calc"]):
                await wait_for(lambda: calc.NOTED == [("calc", "for later")])

    # -- load and priority -----------------------------------------------------------------------

    async def test_the_consumers_of_a_domain_share_its_load(self, deployment: Deployment) -> None:
        async with (
            deployment.process(["calc"], concurrency=2) as one,
            deployment.process(["calc"], concurrency=2) as two,
            deployment.process([]) as front,
        ):
            served = await asyncio.gather(*(front.execute(calc.Where(pause=0.05)) for _ in range(12)))
        assert set(served) == {one.transport.consumer, two.transport.consumer}

    async def test_higher_priority_first_under_backlog(self, deployment: Deployment) -> None:
        calc.RECORDED.clear()
        async with deployment.process([], wait_for_consumer=True) as front:  # queued before any consumer
            sent = [await front.put_message(calc.Record(tag=f"n{i}")) for i in range(10)]
            sent += [await front.put_message(calc.Record(tag=f"h{i}", priority=5)) for i in range(10)]

            async def queued() -> bool:
                return (await deployment.length("calc", "normal"), await deployment.length("calc", "high")) == (10, 10)

            assert await eventually(queued)
            async with deployment.process(["calc"], concurrency=1, batch=1):
                results = await asyncio.gather(*(m.state for m in sent))
        assert sorted(results) == sorted(m.tag for m in sent)
        assert sorted(calc.RECORDED[:10]) == sorted(f"h{i}" for i in range(10))
        assert sorted(calc.RECORDED[10:]) == sorted(f"n{i}" for i in range(10))

    # -- delivery guarantees ---------------------------------------------------------------------

    async def test_a_dead_consumers_pending_entries_are_reclaimed(self, deployment: Deployment) -> None:
        key = deployment.reply_key
        entry = await deployment.inject("calc", {
            "name": "calc.add", "payload": '{"a": 3, "b": 4}', "reply_to": key, "id": "a" * 32,
        })
        assert await deployment.take("calc") == 1  # read by a consumer that dies, unacknowledged
        async with deployment.process(["calc"], claim_idle=0.3):
            (reply,) = await deployment.replies(key, 1)
            assert reply["entry"] == entry and json.loads(reply["result"]) == 7
            assert await eventually(lambda: _zero(deployment.pending("calc")))

    async def test_a_restarted_consumer_resumes_its_own_pending_entries(self, deployment: Deployment) -> None:
        key = deployment.reply_key
        await deployment.inject("calc", {"name": "calc.add", "payload": '{"a": 1, "b": 1}', "reply_to": key})
        assert await deployment.take("calc") == 1
        started = time.monotonic()
        async with deployment.process(["calc"], consumer="ghost", claim_idle=60):  # the same name, at once
            (reply,) = await deployment.replies(key, 1)
        assert json.loads(reply["result"]) == 2 and time.monotonic() - started < 5

    async def test_an_entry_whose_consumers_keep_dying_goes_to_the_dead_letters(self, deployment: Deployment) -> None:
        key = deployment.reply_key
        await deployment.inject("calc", {"name": "calc.add", "payload": '{"a": 3, "b": 4}', "reply_to": key, "id": "b" * 32})
        assert await deployment.take("calc") == 1
        reported: list[DeadLetter] = []
        async with deployment.process(["calc"], claim_idle=0.2, max_deliveries=1) as worker:
            worker.hooks.dead_lettered.connect(reported.append)
            (reply,) = await deployment.replies(key, 1)
            assert reply["ok"] == "0" and reply["error_type"] == "bollydog.errors.TransportError"
            (letter,) = await worker.transport.dead_letters()
        assert "delivered 2 times without an acknowledgement" in letter["dl_reason"]
        assert [(d.name, d.domain) for d in reported] == [("calc.add", "calc")]
        assert "delivered 2 times" in reported[0].reason

    async def test_max_deliveries_bounds_the_delivery_count_of_a_raw_entry(self, deployment: Deployment) -> None:
        """A foreign producer's ``delivery_count`` beyond ``max_deliveries`` is brought down to
        it: the failing handler runs ``max_deliveries`` times, then the caller gets the error."""
        from bollydog.hub.middleware import RetryMiddleware

        key = deployment.reply_key
        retries: list[int] = []
        async with deployment.process(["calc"], max_deliveries=3) as worker:
            for layer in worker.middlewares:
                if isinstance(layer, RetryMiddleware):
                    layer.backoff = layer.backoff_max = 0.001
            worker.hooks.retrying.connect(lambda message, handler, attempt, error, delay: retries.append(attempt))
            await deployment.inject("calc", {
                "name": "calc.fail", "payload": '{"text": "again"}', "reply_to": key, "id": "d" * 32,
                "delivery_count": "100000",
            })
            (reply,) = await deployment.replies(key, 1)
            assert reply["ok"] == "0" and reply["error_type"] == "ValueError"
            assert await eventually(lambda: _zero(deployment.pending("calc")))
        assert retries == [1, 2]

    async def test_invalid_entries_are_dead_lettered_and_the_consumer_goes_on(self, deployment: Deployment) -> None:
        key = deployment.reply_key
        bad = [
            *BAD_ENTRIES,
            ({"name": "calc.add", "payload": json.dumps({"a": "x", "b": 1}), "reply_to": key, "id": "f" * 32},
             "invalid calc.add: a:"),
            ({"name": "calc.add", "payload": json.dumps({"a": 1}), "reply_to": key}, "invalid calc.add: b:"),  # no id
        ]
        async with deployment.process(["calc"]) as worker:
            for fields, _ in bad:
                await deployment.inject("calc", fields)
            await deployment.inject("calc", {"name": "calc.add", "payload": '{"a": 1, "b": 1}', "reply_to": key, "id": "e" * 32})
            replies = {r["id"]: r for r in await deployment.replies(key, 3)}
            assert json.loads(replies.pop("e" * 32)["result"]) == 2
            # Invalid fields are the sender's error, as over HTTP; an entry without an id is
            # answered under the id generated for it.
            failed, (generated, unnamed) = replies.pop("f" * 32), replies.popitem()
            for reply in (failed, unnamed):
                assert reply["ok"] == "0" and reply["error_type"] == "bollydog.transport.wire.InvalidFieldsError"
                assert reply["error_status"] == "422"
            assert len(generated) == 32
            dead = await eventually(lambda: _count(worker.transport.dead_letters(), len(bad)))
            assert dead and len(dead) == len(bad)
            for fields, reason in bad:  # handled concurrently: dead letters come in any order
                (letter,) = [d for d in dead if {k: v for k, v in d.items() if not k.startswith("dl_")} == fields]
                assert reason in letter["dl_reason"], (reason, letter)
                assert letter["dl_group"] == "calc" and letter["dl_consumer"] == worker.transport.consumer
            assert await deployment.pending("calc") == 0
            assert await deployment.dead_letters() == dead
            # Replayed, an entry goes back where it came from; still bad, it comes back here.
            assert await worker.transport.replay([dead[0]["dl_id"]]) == [dead[0]["dl_id"]]
            again = await eventually(lambda: _count(worker.transport.dead_letters(), len(bad), newer=dead[0]["dl_id"]))
            assert again and again[-1]["payload"] == dead[0]["payload"]

    async def test_the_dead_letter_log_names_the_id_deadletters_lists(
        self, deployment: Deployment, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with deployment.process(["calc"]) as worker:
            with caplog.at_level(logging.ERROR, logger="bollydog.transport"):
                source = await deployment.inject("calc", {"name": "calc.nosuch", "payload": "{}"})
                (letter,) = await eventually(lambda: _count(worker.transport.dead_letters(), 1))
        # Two ids of two streams: equal when both entries were added in the same millisecond
        # (a fast consumer), and then the line below cannot tell them apart; usually they differ.
        assert letter["dl_entry"] == source
        (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dead letter ")]
        assert line.startswith(f"dead letter {letter['dl_id']} (was entry {source} of ")
        assert await worker.transport.replay([letter["dl_id"]]) == [letter["dl_id"]]

    async def test_an_entry_that_is_not_utf8_is_dead_lettered_naming_the_field(self, deployment: Deployment) -> None:
        calc.RECORDED.clear()
        key = deployment.reply_key
        async with deployment.process(["calc"]) as worker:
            await deployment.inject("calc", {
                "name": "calc.record", "payload": b'{"tag": "caf\xe9"}', "reply_to": key, "id": "9" * 32,
            })
            (reply,) = await deployment.replies(key, 1)
            assert reply["ok"] == "0" and reply["error_type"] == "bollydog.transport.wire.WireError"
            assert "field 'payload' is not valid UTF-8" in reply["error"]
            (letter,) = await eventually(lambda: worker.transport.dead_letters())
            assert "field 'payload' is not valid UTF-8" in letter["dl_reason"]
            assert await deployment.pending("calc") == 0
        assert calc.RECORDED == []

    async def test_a_long_handler_keeps_its_entry(self, deployment: Deployment) -> None:
        """A handler slower than claim_idle: its consumer keeps the entry alive, so an eager
        second consumer never takes it over and runs it again."""
        calc.SLOW_RUNS.clear()
        async with (
            deployment.process(["calc"], claim_idle=0.3, claim_interval=10),
            deployment.process([]) as front,
        ):
            slow = asyncio.ensure_future(front.execute(calc.Slow(seconds=1.2, expire_time=5)))
            await wait_for(lambda: bool(calc.SLOW_RUNS))
            async with deployment.process(["calc"], claim_idle=0.3, claim_interval=0.05):
                assert await slow == 1.2
        assert calc.SLOW_RUNS == [1.2]

    async def test_accept_and_reject(self, deployment: Deployment) -> None:
        async with (
            deployment.process(["calc"], reject=["calc.fail"], accept=["calc.*"]) as worker,
            deployment.process([]) as front,
        ):
            assert await front.execute(calc.Add(a=1, b=1)) == 2
            with pytest.raises(wire.WireError, match="calc.fail is not accepted"):
                await front.execute(calc.Fail(text="x"))
            (letter,) = await worker.transport.dead_letters()
            assert "accept/reject" in letter["dl_reason"]
            accepts = worker.transport.accepts
            assert accepts("calc.add") and not accepts("calc.fail") and not accepts("other.add")

    # -- partial results -------------------------------------------------------------------------

    async def test_partial_results_stream_in_order_before_the_result(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"]), deployment.process([]) as front:
            message = calc.Count(n=3, pause=0.05)
            run = asyncio.ensure_future(front.execute(message))
            seen, running = [], []
            async for partial in message.stream():
                seen.append(partial)
                running.append(not run.done())
            assert seen == PARTIALS and running[0]  # while the handler still ran
            assert await run == {"done": 3} == await message.state
            failing = calc.Count(n=2, fail=True)
            run = asyncio.ensure_future(front.execute(failing))
            assert [p async for p in failing.stream()] == [{"i": 0}, {"i": 1}]
            with pytest.raises(ValueError, match="counted to 2"):
                await run

    # -- liveness --------------------------------------------------------------------------------

    async def test_no_live_consumer_is_refused_at_once_and_never_runs(self, deployment: Deployment) -> None:
        calc.RECORDED.clear()
        async with deployment.process([], **deployment.uncached) as front:
            async with deployment.process(["calc"]), deployment.process(["calc"]):
                assert await deployment.consumers("calc") == 2
                assert await front.execute(calc.Record(tag="up")) == "up"
            assert await deployment.consumers("calc") == 0  # both withdrew on stop
            started = time.monotonic()
            with pytest.raises(NoConsumerError, match="no process is consuming domain 'calc'") as refused:
                await front.execute(calc.Record(tag="refused", expire_time=30))
            assert time.monotonic() - started < 0.5 and "wait_for_consumer" in str(refused.value)
            assert await deployment.length("calc") == 0  # not sent
            async with deployment.process(["calc"]):
                assert await front.execute(calc.Record(tag="back")) == "back"
                await asyncio.sleep(0.05)
        assert calc.RECORDED == ["up", "back"]

    async def test_a_command_that_waits_for_a_consumer_runs_once_one_comes(self, deployment: Deployment) -> None:
        calc.RECORDED.clear()
        async with deployment.process([]) as front:
            call = asyncio.ensure_future(front.execute(calc.Queued(tag="patient", expire_time=10)))
            assert await eventually(lambda: _length(deployment, "calc", call))
            assert not call.done()  # queued, not refused
            async with deployment.process(["calc"]):
                assert await asyncio.wait_for(call, 5) == "patient"
        async with deployment.process([], wait_for_consumer=True) as front:  # the option, for every command
            with pytest.raises(HandlerTimeoutError):
                await front.execute(calc.Add(a=1, b=2, expire_time=0.2))
            assert await deployment.length("calc") == 1
        assert calc.RECORDED == ["patient"]

    async def test_a_consumer_renews_its_heartbeat_while_it_runs(self, deployment: Deployment) -> None:
        async with deployment.process(["calc"], consumer_ttl=0.3):
            await asyncio.sleep(0.5)  # longer than the ttl: alive only if it renewed meanwhile
            assert await deployment.consumers("calc") == 1

    # -- lifecycle -------------------------------------------------------------------------------

    async def test_replies_reach_a_caller_while_it_drains(self, deployment: Deployment) -> None:
        """The stopping process's in-flight handler asks another domain during the grace
        period: it gets its reply and completes, instead of hanging and running again."""
        domains = ["calc", "orch"]
        async with deployment.process(["calc"], domains), deployment.process([], domains) as front:
            orch = deployment.process(["orch"], domains, grace=3)
            await orch.__aenter__()
            try:
                call = asyncio.ensure_future(front.execute(PausedOrchestrate(pause=0.3, expire_time=5)))
                await asyncio.sleep(0.1)  # the orchestration runs, before its remote request
            finally:
                started = time.monotonic()
                await orch.__aexit__(None, None, None)
            assert time.monotonic() - started < 2
            assert await asyncio.wait_for(call, 1) == 3

    async def test_a_process_starts_again_after_a_stop(self, deployment: Deployment) -> None:
        worker, front = deployment.build(["calc"]), deployment.build([])
        for attempt in range(2):
            async with worker, front:
                assert await front.execute(calc.Add(a=attempt, b=1)) == attempt + 1
                assert len(worker.transport.consumers) == 1  # one per hosted domain, not one per start
        with pytest.raises(TransportError, match="not running"):  # stopped: nothing is sent
            await front.transport.request(calc.Add(a=1, b=1))

    async def test_an_unknown_option_is_a_config_error_naming_it(self, deployment: Deployment) -> None:
        with pytest.raises(ConfigError, match="max_delivery"):
            async with deployment.process([], max_delivery=3):
                pass


async def _true(value: bool) -> bool:
    return value


async def _zero(count: Any) -> bool:
    return await count == 0


async def _count(letters: Any, expected: int, newer: str | None = None) -> list[dict[str, str]]:
    found = await letters
    if len(found) != expected or (newer is not None and found[-1]["dl_id"] == newer):
        return []
    return found


async def _length(deployment: Deployment, domain: str, call: asyncio.Future[Any]) -> bool:
    return call.done() or await deployment.length(domain) == 1
