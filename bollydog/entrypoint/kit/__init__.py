"""The entrypoint kit: what the HTTP, WebSocket and MCP entrypoints share, written once.

An entrypoint is thin: it parses its transport, resolves the message name
(``hub.registry.resolve``), authenticates, admits, encodes. Everything but the parsing lives
here, one module per concept:

* :mod:`.site`: one listener: the socket binder and the uvicorn runner, with one lifecycle;
* :mod:`.settings`: the options every entrypoint parses, the JWT block among them;
* :mod:`.auth`: JWT verification and the :class:`~bollydog.models.base.Session` of a request;
* :mod:`.admission`: admit a message through the hub's bounds, await its outcome (and its
  partial results), and the requests in flight a shutdown waits for and cuts;
* :mod:`.encoding`: the one JSON encoding of results and answers;
* :mod:`.schemas`: the JSON Schemas of what a client sends and gets back (OpenAPI, MCP tools).

The error mapping is :func:`bollydog.errors.describe`, the name filter
:class:`bollydog.names.MessageFilter`. Importing this package imports nothing heavy: the CLI
uses :mod:`.encoding` without the ``http`` extra.
"""
