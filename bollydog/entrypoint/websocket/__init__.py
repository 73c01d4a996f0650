"""The WebSocket entrypoint: ``bollydog.entrypoint.websocket.app.SocketService``.

The JSON protocol is in :mod:`bollydog.entrypoint.websocket.protocol` and ``docs/websocket.md``.
"""
