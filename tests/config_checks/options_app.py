"""AppService subclasses taking options the way user apps do."""

from typing import Any

from bollydog.models.service import AppService


class TariffService(AppService):
    """Takes ``rate`` itself and passes the rest (``name``, ``domain``, ...) on."""

    def __init__(self, *, rate: float = 1.0, **options: Any) -> None:
        super().__init__(**options)
        self.rate = rate


class PlainService(AppService):
    """No constructor of its own: AppService's options only."""
