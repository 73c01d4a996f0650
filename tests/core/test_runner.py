import asyncio
import os
import signal
import time

import pytest

from bollydog.cli.runner import serve
from bollydog.errors import HubNotRunningError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.testing import handling
from tests.core.sample_handlers import whoami
from tests.core.sample_messages import Sleep, Whoami


async def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def make_hub(grace: float) -> HubService:
    app = AppService.create_from(domain="tests", handlers=["tests.core.sample_handlers"])
    return HubService(apps=[app], shutdown_grace=grace)


async def test_first_signal_drains_in_flight_work():
    hub = make_hub(grace=5)
    server = asyncio.create_task(serve(hub))
    await wait_until(lambda: hub.accepting)
    message = await hub.put_message(Sleep(seconds=0.3, label="finished"))
    await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(server, 5)
    assert await message.state == "finished"


async def test_second_signal_forces_and_callers_get_a_clear_error():
    hub = make_hub(grace=30)
    server = asyncio.create_task(serve(hub))
    await wait_until(lambda: hub.accepting)
    message = await hub.put_message(Sleep(seconds=30))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(0.1)
    assert not server.done()  # draining, the handler still runs
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(server, 5)
    assert time.monotonic() - started < 3
    with pytest.raises(HubNotRunningError):
        await message.state


async def test_handling_sets_globals_for_direct_handler_calls():
    hub = make_hub(grace=1)
    app = hub.apps["tests"]
    message = Whoami()
    with handling(message, hub=hub, app=app):
        result = await whoami(message, None, hub, app)
    assert result["message_iid"] == message.iid and result["global_app_domain"] == "tests"
