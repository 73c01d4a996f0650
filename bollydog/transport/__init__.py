"""Transports that carry messages between processes.

- :mod:`bollydog.transport.redis`: :class:`~bollydog.transport.redis.RedisTransport`, Redis
  Streams with consumer groups (needs ``pip install 'bollydog[redis]'``).
- :mod:`bollydog.transport.wire`: the JSON envelope format they share (see docs/distribute.md).

The port itself, :class:`bollydog.hub.transport.Transport`, and the default in-process
transport live in :mod:`bollydog.hub.transport`. Importing this package imports no driver.
"""
