"""Suite-wide set-up."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def example_database(tmp_path_factory):
    """The example's SQLite file goes to a temporary folder, not into the checkout.

    Set in ``os.environ`` so that ``bollydog`` subprocesses started by tests inherit it.
    """
    path = tmp_path_factory.mktemp("example") / "example.db"
    previous = os.environ.get("BOLLYDOG_EXAMPLE_DATABASE_URL")
    os.environ["BOLLYDOG_EXAMPLE_DATABASE_URL"] = f"sqlite+aiosqlite:///{path}"
    yield path
    if previous is None:
        os.environ.pop("BOLLYDOG_EXAMPLE_DATABASE_URL", None)
    else:
        os.environ["BOLLYDOG_EXAMPLE_DATABASE_URL"] = previous
