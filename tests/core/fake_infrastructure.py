"""A fake transport and a fake hub plugin, referenced from test configs by dotted path."""

from typing import Any

from bollydog.bootstrap import Entrypoint, HubPlugin
from bollydog.hub.transport import Transport


class LoopbackTransport(Transport):
    """Answers remote commands with a canned reply, recording what it was asked."""

    def __init__(self, reply: Any = "remote", **options: Any) -> None:
        super().__init__(**options)
        self.reply = reply
        self.requests: list[Any] = []

    async def request(self, message: Any) -> Any:
        self.requests.append(message)
        return self.reply


class TaggingPlugin(HubPlugin):
    """Records the names of every message dispatched, as an outermost middleware."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.seen: list[str] = []

    @property
    def middleware(self):
        async def record(call_next, message, handler):
            self.seen.append(message.name)
            return await call_next(message, handler)

        return record


class Recorder(Entrypoint):
    started_with_hub = None

    async def on_start(self) -> None:
        Recorder.started_with_hub = self.hub
