"""Redis fixtures of the distributed tests (skipped without ``BOLLYDOG_TEST_REDIS_URL``)."""

from tests.distribute.conftest import prefix, redis_url  # noqa: F401  (fixtures)
