"""Messages, AppService, and the persistence ports (UnitOfWork, Protocol)."""
