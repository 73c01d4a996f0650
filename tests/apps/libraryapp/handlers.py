from bollydog.models.base import Session

from libraryapp.errors import NotAvailable
from libraryapp.messages import BookBorrowed, Borrow, ListBooks

SHELF = ["dune", "emma", "ulysses"]


async def borrow(command: Borrow, session: Session):
    if command.title not in SHELF:
        raise NotAvailable(f"'{command.title}' is not on the shelf", title=command.title)
    yield {"status": "checking", "title": command.title}
    yield BookBorrowed(title=command.title, reader=command.reader)
    yield {"status": "lent", "title": command.title, "by": session.username}


async def list_books(command: ListBooks) -> list[str]:
    return list(SHELF)
