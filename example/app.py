"""The example domain's AppService."""

from bollydog.models.service import AppService


class ExampleService(AppService):
    """Serves ``example.handler`` and ``example.shop``; HTTP routes live under /example/exampleservice/."""

    #: Units every process starts with (the shop's store is in memory, one per process), so a
    #: one-shot ``bollydog execute ... --message example.placeorder`` can place an order.
    initial_stock = {"apple": 100, "pear": 50}

    async def on_start(self) -> None:
        from example.shop import Stock

        await super().on_start()
        for sku, units in self.initial_stock.items():
            if await self.protocol.get(Stock, sku) is None:
                await self.protocol.add(Stock(iid=sku, units=units))
