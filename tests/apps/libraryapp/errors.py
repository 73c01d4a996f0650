from bollydog.errors import DomainError


class NotAvailable(DomainError):
    """The book is not on the shelf: a conflict with the library's state, not a crash."""

    status_code = 409
    exit_code = 3
