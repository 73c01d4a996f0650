"""The example domain's AppService."""

from bollydog.models.service import AppService


class ExampleService(AppService):
    """Serves ``example.handler`` and ``example.shop``; HTTP routes live under /example/exampleservice/."""
