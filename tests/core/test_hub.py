import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bollydog.adapters.memory import MemoryProtocol
from bollydog.errors import (
    DuplicateHandlerError,
    EventHandlersError,
    HandlerRegistrationError,
    HandlerTimeoutError,
    HubNotRunningError,
    NoHandlerError,
    QueueFullError,
)
from bollydog.handlers import discover
from bollydog.models.base import BaseDomain, Command, Event, Session
from bollydog.models.service import AppService
from bollydog.service import builtins
from bollydog.service.app import HubService
from bollydog.testing import as_user, running_hub
from tests.core import sample_handlers as sh
from tests.core.sample_messages import Add, Imported, Mul, Ping, SelfHandled, Sleep, SyncWork, Whoami


def hub_for(*modules: str, **options) -> HubService:
    return HubService(apps=[AppService.create_from(domain="tests", handlers=modules)], **options)


# -- discovery and registration -------------------------------------------------------------------


def test_discovery_finds_functions_unions_and_self_handling_messages_defined_in_the_module():
    found = {h.qualname.rsplit(".", 1)[-1]: h for h in discover("tests.core.sample_handlers")}
    assert {"add", "mul", "sync_work", "sleep", "whoami", "either", "piped", "note_one", "note_two"} <= set(found)
    assert "imported_handler" not in found and "not_a_handler" not in found
    assert found["either"].message_types == (Ping, sh.Unioned)  # typing.Union
    assert found["piped"].message_types == (sh.Piped, sh.Noted)  # PEP 604 union
    assert found["sync_work"].kind == "sync"
    messages_module = {h.qualname for h in discover("tests.core.sample_messages")}
    assert "tests.core.sample_messages.SelfHandled.__call__" in messages_module


def test_a_second_command_handler_is_a_startup_error_naming_both():
    async def other_add(command: Add) -> int:
        return 0

    hub = hub_for("tests.core.sample_handlers")
    with pytest.raises(DuplicateHandlerError) as info:
        hub.register(other_add)
    assert "tests.core.sample_handlers.add" in str(info.value) and "other_add" in str(info.value)


def test_uninjectable_parameter_is_rejected_at_registration():
    async def needs(command: Ping, mystery: int) -> None: ...

    with pytest.raises(HandlerRegistrationError, match="mystery"):
        HubService().register(needs)


def test_unimportable_handler_module_is_a_registration_error():
    with pytest.raises(HandlerRegistrationError, match="no_such_module"):
        hub_for("tests.core.no_such_module")


# -- execute / put_message --------------------------------------------------------------------


async def test_execute_and_put_message_return_results_through_state():
    async with hub_for("tests.core.sample_handlers", "tests.core.sample_messages") as hub:
        assert await hub.execute(Add(a=2, b=3)) == 5
        queued = await hub.put_message(Mul(a=2, b=3))
        assert await queued.state == 6
        assert await hub.execute(SelfHandled(text="hi")) == "HI"
        assert await hub.execute(Imported()) == "imported"
        assert await hub.execute(Ping()) == "either:Ping"
        assert await hub.execute(sh.Piped(value=1)) == "piped:Piped"


async def test_handler_errors_propagate_as_themselves():
    class Boom(Command):
        pass

    async def boom(command: Boom) -> None:
        raise KeyError("missing thing")

    hub = HubService()
    hub.register(boom)
    async with hub:
        with pytest.raises(KeyError, match="missing thing"):
            await hub.execute(Boom())
        queued = await hub.put_message(Boom())
        with pytest.raises(KeyError, match="missing thing"):
            await queued.state


async def test_unknown_command_raises_no_handler_error():
    async with HubService() as hub:
        with pytest.raises(NoHandlerError, match="add"):
            await hub.execute(Add(a=1, b=1))


async def test_sync_handlers_run_off_the_event_loop():
    async with hub_for("tests.core.sample_handlers") as hub:
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        assert await hub.execute(SyncWork(seconds=0.3)) == 0.3
        task.cancel()
        assert ticks >= 10  # the loop kept running while the handler blocked


async def test_three_one_second_handlers_run_concurrently():
    async with hub_for("tests.core.sample_handlers") as hub:
        started = time.perf_counter()
        queued = [await hub.put_message(Sleep(seconds=1, label=str(i))) for i in range(3)]
        results = await asyncio.gather(*(m.state for m in queued))
        elapsed = time.perf_counter() - started
    assert results == ["0", "1", "2"]
    assert elapsed < 1.5


async def test_concurrency_limit_bounds_top_level_messages():
    async with hub_for("tests.core.sample_handlers", concurrency=2) as hub:
        started = time.perf_counter()
        queued = [await hub.put_message(Sleep(seconds=0.2)) for _ in range(4)]
        await asyncio.gather(*(m.state for m in queued))
        assert time.perf_counter() - started >= 0.39


async def test_injection_and_globals_see_their_own_context_under_concurrency():
    class Probe(Command):
        index: int

    seen = {}

    async def probe(command: Probe, current: Session) -> None:
        from bollydog.globals import message, session

        await asyncio.sleep(0.01 * (command.index % 3))
        seen[command.index] = (message.index, session.username, current.username)

    hub = HubService()
    hub.register(probe)
    async with hub:
        queued = []
        for i in range(30):
            with as_user(f"user{i}"):
                queued.append(await hub.put_message(Probe(index=i)))
        await asyncio.gather(*(m.state for m in queued))
    assert seen == {i: (i, f"user{i}", f"user{i}") for i in range(30)}


async def test_typed_injection_of_session_hub_and_app():
    async with hub_for("tests.core.sample_handlers") as hub:
        with as_user("carol"):
            result = await hub.execute(Whoami())
    assert result["injected_user"] == result["global_user"] == "carol"
    assert result["same_hub"] and result["app_domain"] == result["global_app_domain"] == "tests"


# -- events ---------------------------------------------------------------------------------------


async def test_event_handlers_all_run_and_one_failure_is_reported_not_swallowed(caplog):
    class Happened(Event):
        pass

    ran = []

    async def slow_ok(event: Happened) -> str:
        await asyncio.sleep(0.05)
        ran.append("ok")
        return "ok"

    async def fails(event: Happened) -> None:
        raise ValueError("handler broke")

    hub = HubService()
    hub.register(slow_ok, fails)
    async with hub:
        event = Happened()
        with caplog.at_level(logging.ERROR, logger="bollydog.hub"):
            with pytest.raises(EventHandlersError) as info:
                await hub.execute(event)
    assert ran == ["ok"]
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert any(event.trace_id in r.getMessage() for r in caplog.records)


async def test_event_handlers_run_concurrently_and_results_are_in_order():
    async with hub_for("tests.core.sample_handlers") as hub:
        assert await hub.execute(sh.Noted(text="x")) == ["piped:Noted", "one:x", "two:x"]  # registration order


async def test_event_without_handlers_is_fine():
    class Nobody(Event):
        pass

    async with HubService() as hub:
        assert await hub.execute(Nobody()) == []


# -- queue and lifecycle --------------------------------------------------------------------------


async def test_full_queue_raises_at_once():
    async with hub_for("tests.core.sample_handlers", queue_max_size=2, concurrency=1) as hub:
        first = await hub.put_message(Sleep(seconds=0.2))
        await asyncio.sleep(0.01)  # the intake takes it: the queue is empty again
        await hub.put_message(Sleep(seconds=0))
        await hub.put_message(Sleep(seconds=0))
        with pytest.raises(QueueFullError, match="BOLLYDOG_QUEUE_MAX_SIZE"):
            await hub.put_message(Sleep(seconds=0))
        await first.state


async def test_put_message_refused_before_start_and_after_stop():
    hub = hub_for("tests.core.sample_handlers")
    with pytest.raises(HubNotRunningError):
        await hub.put_message(Add(a=1, b=1))
    async with hub:
        pass
    with pytest.raises(HubNotRunningError):
        await hub.put_message(Add(a=1, b=1))


async def test_stop_drains_in_flight_work():
    hub = hub_for("tests.core.sample_handlers")
    await hub.start()
    queued = [await hub.put_message(Sleep(seconds=0.2, label="done")) for _ in range(3)]
    await hub.stop()
    assert [m.state.result() for m in queued] == ["done"] * 3


async def test_stop_after_grace_period_fails_leftovers_instead_of_hanging():
    hub = hub_for("tests.core.sample_handlers", shutdown_grace=0.1, concurrency=1)
    await hub.start()
    running = await hub.put_message(Sleep(seconds=10))
    waiting = await hub.put_message(Sleep(seconds=10))
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await hub.stop()
    assert time.perf_counter() - started < 1
    for message in (running, waiting):
        with pytest.raises(HubNotRunningError):
            await message.state


async def test_a_direct_execute_still_running_after_the_grace_raises_hub_not_running():
    hub = hub_for("tests.core.sample_handlers", shutdown_grace=0.1)
    await hub.start()
    call = asyncio.ensure_future(hub.execute(Sleep(seconds=30)))
    await asyncio.sleep(0.01)
    await hub.stop()  # waits for it like for queued work, then cuts it
    with pytest.raises(HubNotRunningError):
        await asyncio.wait_for(call, 1)
    assert not call.cancelled()


def test_a_plain_def_handler_cut_by_shutdown_does_not_keep_the_process_alive():
    # asyncio.run joins the default executor's threads at exit; plain handlers run elsewhere.
    code = (
        "import asyncio, time\n"
        "from bollydog.models.service import AppService\n"
        "from bollydog.service.app import HubService\n"
        "from tests.core.sample_messages import SyncWork\n"
        "async def main():\n"
        "    app = AppService.create_from(domain='tests', handlers=['tests.core.sample_handlers'])\n"
        "    async with HubService(apps=[app], shutdown_grace=0.1) as hub:\n"
        "        message = await hub.put_message(SyncWork(seconds=20))\n"
        "        await asyncio.sleep(0.1)\n"
        "    try:\n"
        "        await message.state\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__)\n"
        "started = time.monotonic()\n"
        "asyncio.run(main())\n"
        "print(round(time.monotonic() - started, 1))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=30,
    )
    outcome, elapsed = done.stdout.split()
    assert outcome == "HubNotRunningError", done.stderr
    assert float(elapsed) < 3, done.stderr


async def test_a_handler_that_stops_the_hub_does_not_wait_for_itself():
    class Shutdown(Command):
        pass

    async def shutdown(command: Shutdown, hub: HubService) -> str:
        await hub.stop()
        return "stopped"

    hub = HubService(shutdown_grace=5)
    hub.register(shutdown)
    await hub.start()
    started = time.perf_counter()
    assert await asyncio.wait_for(hub.execute(Shutdown()), 5) == "stopped"
    assert time.perf_counter() - started < 1


async def test_higher_priority_queued_messages_run_first():
    order = []

    class Job(Command):
        label: str

    async def job(command: Job) -> None:
        order.append(command.label)
        await asyncio.sleep(0.01)

    hub = HubService(concurrency=1)
    hub.register(job)
    async with hub:
        blocker = await hub.put_message(Job(label="blocker"))
        await asyncio.sleep(0)
        low = await hub.put_message(Job(label="low", priority=0))
        high = await hub.put_message(Job(label="high", priority=9))
        await asyncio.gather(blocker.state, low.state, high.state)
    assert order == ["blocker", "high", "low"]


async def test_builtin_task_count_and_list_see_running_messages():
    async with hub_for("tests.core.sample_handlers") as hub:
        sleepers = [await hub.put_message(Sleep(seconds=0.3)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert await hub.execute(builtins.TaskCount()) == {"running": 2, "queued": 0}
        listed = await hub.execute(builtins.TaskList())
        assert sorted(m["iid"] for m in listed) == sorted(m.iid for m in sleepers)
        await asyncio.gather(*(m.state for m in sleepers))
        assert (await hub.execute(builtins.TaskCount()))["running"] == 0


# -- timeouts and retries -------------------------------------------------------------------------


async def test_timeout_from_expire_time():
    async with hub_for("tests.core.sample_handlers") as hub:
        started = time.perf_counter()
        with pytest.raises(HandlerTimeoutError, match="0.1s"):
            await hub.execute(Sleep(seconds=5, expire_time=0.1))
        assert time.perf_counter() - started < 1
        # The task survives its timeout: the next message runs normally.
        assert await hub.execute(Sleep(seconds=0.01, label="after")) == "after"


async def test_handler_catching_its_own_timeout_error_is_not_confused_with_expiry():
    class Own(Command):
        pass

    async def own(command: Own) -> None:
        raise TimeoutError("my own")

    hub = HubService()
    hub.register(own)
    async with hub:
        with pytest.raises(TimeoutError, match="my own") as info:
            await hub.execute(Own())
    assert not isinstance(info.value, HandlerTimeoutError)


async def test_retries_follow_delivery_count(monkeypatch):
    monkeypatch.setenv("BOLLYDOG_RETRY_BACKOFF", "0.01")
    from bollydog.settings import reload_settings

    reload_settings()
    attempts = []

    class Flaky(Command):
        failures: int

    async def flaky(command: Flaky) -> int:
        attempts.append(time.perf_counter())
        if len(attempts) <= command.failures:
            raise ConnectionError(f"attempt {len(attempts)}")
        return len(attempts)

    hub = HubService()
    hub.register(flaky)
    try:
        async with hub:
            assert await hub.execute(Flaky(failures=2, delivery_count=3)) == 3
            assert attempts[2] - attempts[1] >= attempts[1] - attempts[0] >= 0.009  # backoff grows
            attempts.clear()
            with pytest.raises(ConnectionError, match="attempt 2"):
                await hub.execute(Flaky(failures=5, delivery_count=2))
            attempts.clear()
            with pytest.raises(ConnectionError, match="attempt 1"):
                await hub.execute(Flaky(failures=5))  # default: one delivery
    finally:
        monkeypatch.delenv("BOLLYDOG_RETRY_BACKOFF")
        reload_settings()


# -- transactions ---------------------------------------------------------------------------------


class Item(BaseDomain):
    label: str


class ItemStored(Event):
    label: str


class StoreItem(Command):
    label: str
    fail: bool = False


async def test_transaction_commits_on_success_rolls_back_on_error_and_publishes_after_commit():
    seen_events = []

    async def store(command: StoreItem, protocol: MemoryProtocol) -> str:
        item = Item(label=command.label)
        item.raise_event(ItemStored(label=command.label))
        await protocol.add(item)
        if command.fail:
            raise RuntimeError("after writing")
        return item.iid

    async def on_stored(event: ItemStored) -> None:
        seen_events.append(event.label)

    protocol = MemoryProtocol()
    async with running_hub(protocol=protocol, handlers=[store, on_stored]) as hub:
        iid = await hub.execute(StoreItem(label="kept"))
        with pytest.raises(RuntimeError):
            await hub.execute(StoreItem(label="dropped", fail=True))
        await asyncio.sleep(0.05)
        assert [i.label for i in await protocol.list(Item)] == ["kept"]
        assert (await protocol.get(Item, iid)).label == "kept"
    assert seen_events == ["kept"]
    assert protocol.unit_of_work.rollbacks == 1


async def test_completed_hook_sees_every_completed_message_and_cannot_break_dispatch(caplog):
    seen = []

    def observer(message, result, error):
        seen.append((message.name, result, type(error).__name__ if error else None))

    def broken(message, result, error):
        raise RuntimeError("observer bug")

    async with hub_for("tests.core.sample_handlers") as hub:
        hub.hooks.completed.connect(observer)
        hub.hooks.completed.connect(broken)
        assert await hub.execute(Add(a=1, b=1)) == 2
        queued = await hub.put_message(Sleep(seconds=5, expire_time=0.05))
        with pytest.raises(HandlerTimeoutError):
            await queued.state
        await hub.execute(sh.Noted(text="n"))
        hub.hooks.completed.disconnect(observer)
        await hub.execute(Add(a=2, b=2))
    assert seen == [("add", 2, None), ("sleep", None, "HandlerTimeoutError"), ("noted", ["piped:Noted", "one:n", "two:n"], None)]
    assert any("completed listener" in r.getMessage() and r.exc_info for r in caplog.records)


def test_explicit_registration_explains_what_is_wrong():
    def no_message(value: int) -> None: ...

    def unresolvable(command: "NotDefinedAnywhere") -> None: ...  # noqa: F821

    hub = HubService()
    with pytest.raises(HandlerRegistrationError, match="annotate its first parameter"):
        hub.register(no_message)
    with pytest.raises(HandlerRegistrationError, match="NotDefinedAnywhere"):
        hub.register(unresolvable)


async def test_failed_publish_to_other_processes_still_runs_local_event_handlers():
    from bollydog.errors import TransportError
    from bollydog.hub.transport import Transport

    class Down(Transport):
        async def publish(self, event):
            raise TransportError("redis is down")

    ran = []

    class Shipped(Event):
        pass

    async def local(event: Shipped) -> None:
        ran.append(event.iid)

    hub = HubService(transport=Down())
    hub.transport.add_remote("elsewhere", [Shipped])
    hub.register(local)
    async with hub:
        event = Shipped()
        with pytest.raises(TransportError, match="redis is down"):
            await hub.execute(event)
    assert ran == [event.iid]


async def test_added_middlewares_wrap_dispatch_in_order_outside_retries():
    calls = []

    def layer(tag):
        async def record(call_next, message, handler):
            calls.append(tag)
            return await call_next(message, handler)

        return record

    attempts = []

    class Shaky(Command):
        pass

    async def shaky(command: Shaky) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first delivery fails")
        return "ok"

    hub = HubService()
    hub.register(shaky)
    hub.add_middleware(layer("inner"), outermost=False)
    hub.add_middleware(layer("outer"))
    async with hub:
        assert await hub.execute(Shaky(delivery_count=2)) == "ok"
    # Both wrap the built-in layers: each sees the message once, whatever the retries below.
    assert calls == ["outer", "inner"]
    assert len(attempts) == 2
