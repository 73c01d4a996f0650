"""AppService: one domain's handlers and persistence, with a ``mode`` service lifecycle."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from mode import Service

from bollydog.models.protocol import Protocol, UnitOfWork
from bollydog.types import HubT, _NoHub


class AppService(Service):
    """A domain: the handler modules it owns and the Protocol/UnitOfWork they persist through.

    Use it directly (``AppService.create_from(domain="shop", handlers=["shop.handlers"])`` or
    ``app: !module bollydog.models.service.AppService`` in config), or subclass it to add
    start/stop behaviour. Its ``name`` (default: the lowercased class name) is the middle part
    of HTTP routes ``/{domain}/{name}/{message}``.

    The options a subclass takes are its constructor's keyword parameters (a config section
    gives them as keys); a ``**options`` parameter passes the rest on to the parent class, whose
    keywords are accepted too. Any other key is an error: see :meth:`accepted_options`.
    """

    mundane_level = "debug"  # mode logs every start/stop at INFO otherwise
    if TYPE_CHECKING:
        # What an instance has (see __init__). A class has None unless its body sets them.
        domain: str
        name: str
    else:
        #: Set in a subclass body to fix the domain (else the constructor's, else the
        #: defining module's top-level package) and the name (else the class name).
        domain = None
        name = None
    #: Config keys that are not constructor options of every AppService.
    handlers: list[str]
    #: Handler modules every instance serves, before those of its ``handlers`` option (a
    #: ready-made domain such as the state service). The composition root reads it too, so a
    #: process where the domain runs elsewhere still knows its messages.
    default_handlers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        domain: str | None = None,
        name: str | None = None,
        handlers: Iterable[str] = (),
        protocol: Protocol | None = None,
        unit_of_work: UnitOfWork | None = None,
    ) -> None:
        super().__init__()
        cls = type(self)
        self.domain = domain or cls.domain or cls.__module__.split(".")[0]
        self.name = (name or cls.name or cls.__name__).lower()
        self.handlers = [*cls.default_handlers, *(h for h in handlers if h not in cls.default_handlers)]
        if protocol is None and unit_of_work is not None:
            protocol = Protocol(unit_of_work)
        elif protocol is not None and unit_of_work is not None:
            protocol.unit_of_work = unit_of_work
        elif protocol is None:
            protocol = _default_protocol()
        self.protocol: Protocol = protocol
        #: The hub this app was added to (``hub.add_app``); until then, one that says so.
        self.hub: HubT = _NoHub("this app", "add it with hub.add_app(app)")

    @classmethod
    def create_from(
        cls,
        domain: str,
        handlers: Iterable[str] = (),
        protocol: Protocol | None = None,
        unit_of_work: UnitOfWork | None = None,
        **options: Any,
    ) -> "AppService":
        """An app for ``domain`` serving the handlers found in the ``handlers`` modules.

        To assemble one from classes and options (as config sections are), use
        :class:`bollydog.builder.ServiceBuilder`.
        """
        return cls(domain=domain, handlers=handlers, protocol=protocol, unit_of_work=unit_of_work, **options)

    @classmethod
    def accepted_options(cls) -> list[str]:
        """The keyword arguments the constructor takes: those of each ``__init__`` up the class
        hierarchy, for as long as one passes ``**options`` on to its parent."""
        accepted: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            if klass is Service or not issubclass(klass, AppService):
                break
            params = inspect.signature(init).parameters.values()
            accepted.extend(
                p.name for p in params
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self" and p.name not in accepted
            )
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return accepted

    @property
    def unit_of_work(self) -> UnitOfWork:
        return self.protocol.unit_of_work

    async def on_start(self) -> None:
        await self.protocol.connect()

    async def on_stop(self) -> None:
        await self.protocol.disconnect()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} domain={self.domain!r} name={self.name!r}>"


def _default_protocol() -> Protocol:
    # The embedded default: an in-memory store with no dependency, so a domain configured
    # without persistence still hands its handlers a working Protocol.
    from bollydog.adapters.memory import MemoryProtocol

    return MemoryProtocol()
