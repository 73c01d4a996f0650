"""Entrypoints: services that feed the hub from outside (HTTP, WebSocket, agent).

Each entrypoint is an :class:`bollydog.bootstrap.Entrypoint` configured by a section of the
config file. Shared, transport-neutral pieces (JWT authentication) live here.
"""
