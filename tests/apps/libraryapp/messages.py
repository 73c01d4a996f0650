from bollydog.models.base import Command, Event


class Borrow(Command):
    """Lend a book to a reader."""

    title: str
    reader: str = "anyone"


class ListBooks(Command):
    """Titles on the shelf."""


class BookBorrowed(Event):
    title: str
    reader: str
