"""Entrypoints: services that feed the hub from outside (HTTP, WebSocket, MCP for agents).

Each entrypoint is an :class:`bollydog.types.Entrypoint` configured by a section of the
config file. What they share (binding and serving, options and JWT authentication, admission,
JSON encoding) is written once, in :mod:`bollydog.entrypoint.kit`.
"""
