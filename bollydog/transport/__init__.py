"""Transports that carry messages between processes.

- :mod:`bollydog.transport.redis`: :class:`~bollydog.transport.redis.RedisTransport`, Redis
  Streams with consumer groups (needs ``pip install 'bollydog[redis]'``).
- :mod:`bollydog.transport.memory`: the in-memory transport and its broker, a split deployment
  in one process for tests (re-exported by :mod:`bollydog.testing`).
- :mod:`bollydog.transport.wire`: the JSON envelope format they share (see docs/distribute.md).
- What every stream transport shares beyond the wire: :mod:`~bollydog.transport.options` (the
  consumer options), :mod:`~bollydog.transport.delivery` (handling one entry),
  :mod:`~bollydog.transport.requests` (request/reply), :mod:`~bollydog.transport.inflight`
  (the deliveries running), :mod:`~bollydog.transport.partials` (partial results), and
  :mod:`~bollydog.transport.streams` (the lifecycle and routing of a stream transport).

The port itself, :class:`bollydog.hub.transport.Transport`, and the default in-process
transport live in :mod:`bollydog.hub.transport`. Importing this package imports no driver.
"""
