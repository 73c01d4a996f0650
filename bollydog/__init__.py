"""bollydog: an asyncio framework of Commands, Events and one Hub behind every entrypoint.

Public paths: ``bollydog.models.base`` (messages), ``bollydog.models.service`` (AppService),
``bollydog.models.protocol`` (UnitOfWork, Protocol), ``bollydog.service.app`` (HubService),
``bollydog.globals`` (context-local proxies), ``bollydog.testing``. Importing bollydog has no side
effects: no logging set-up, no files, no network, no ``.env``.
"""
