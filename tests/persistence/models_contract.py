"""The item model of the contract suite, once per adapter family.

Memory stores pydantic ``BaseDomain`` objects; SQLAlchemy stores ORM-mapped classes. Both have
``iid``, ``name`` and ``qty`` and can ``raise_event``, so one set of handlers serves both.
"""

from __future__ import annotations

from sqlalchemy import String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bollydog.adapters.sqlalchemy import DomainEvents, SqlAlchemyProtocol
from bollydog.models.base import BaseDomain


class MemItem(BaseDomain):
    name: str
    qty: int = 0


class Base(DeclarativeBase):
    pass


class SqlItem(DomainEvents, Base):
    __tablename__ = "contract_items"

    iid: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    qty: Mapped[int] = mapped_column(default=0)


class Stamped(Base):
    """A row with server-generated values, to check they are loaded before the session closes."""

    __tablename__ = "contract_stamped"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), server_default="new")
    note: Mapped[str | None] = mapped_column(String(50), default=None)
    version: Mapped[int] = mapped_column(default=1, server_default="1", onupdate=text("version + 1"))


class SqlItemStore(SqlAlchemyProtocol):
    """A protocol of one's own, as a config file names it: the contract handlers use ``item``."""

    item = SqlItem
