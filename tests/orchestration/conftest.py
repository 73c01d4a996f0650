"""Fixtures of the orchestration tests: Redis (skipped without ``BOLLYDOG_TEST_REDIS_URL``) and
a throwaway PostgreSQL schema (skipped without ``BOLLYDOG_TEST_POSTGRES_URL``)."""

from collections.abc import AsyncIterator

import pytest

from tests.distribute.conftest import prefix, redis_url  # noqa: F401  (fixtures)
from tests.persistence.kits import PostgresSchema, postgres_url


@pytest.fixture
async def schema() -> AsyncIterator[PostgresSchema]:
    made = PostgresSchema(postgres_url())
    await made.create()
    try:
        yield made
    finally:
        await made.drop()
