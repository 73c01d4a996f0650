"""A task list stored in SQLite through SQLAlchemy: the example's persistent domain.

    bollydog execute --config example/config.yaml --message todo.addtask --title "buy milk"
    bollydog execute --config example/config.yaml --message todo.listtasks
    curl "http://127.0.0.1:8000/todo/todoservice/completetask?task_id=1"

The database is ``BOLLYDOG_EXAMPLE_DATABASE_URL`` (default ``sqlite+aiosqlite:///example.db``,
created on first start), so tasks survive between commands and restarts.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import Field

# First: without SQLAlchemy installed it fails with the pip line to run ('bollydog[sql]').
from bollydog.adapters.sqlalchemy import DomainEvents, SqlAlchemyProtocol  # isort: skip
from bollydog.errors import DomainError
from bollydog.models.base import Command, Event
from bollydog.models.service import AppService
from sqlalchemy import String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Task(DomainEvents, Base):
    __tablename__ = "todo_tasks"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    def as_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "done": self.done}


class TodoService(AppService):
    """Serves the task list; HTTP routes live under /todo/todoservice/."""


# -- messages -----------------------------------------------------------------------------------


class AddTask(Command):
    title: str = Field(min_length=1, max_length=200)


class CompleteTask(Command):
    task_id: int


class ListTasks(Command):
    done: bool | None = None


class TaskCompleted(Event):
    task_id: int
    title: str


class UnknownTask(DomainError, LookupError):
    """No task has that id (HTTP 404, exit status 1)."""

    status_code = 404


# -- handlers -----------------------------------------------------------------------------------


async def add_task(command: AddTask, protocol: SqlAlchemyProtocol) -> dict:
    task = await protocol.add(Task(title=command.title))
    return task.as_dict()


async def complete_task(command: CompleteTask, protocol: SqlAlchemyProtocol) -> dict:
    task = await protocol.get(Task, command.task_id)
    if task is None:
        raise UnknownTask(f"no task {command.task_id}")
    if not task.done:
        task = await protocol.update(Task, command.task_id, done=True)
        # Published after the commit; never if the transaction rolls back.
        task.raise_event(TaskCompleted(task_id=task.id, title=task.title))
    return task.as_dict()


async def list_tasks(command: ListTasks, protocol: SqlAlchemyProtocol) -> list[dict]:
    tasks = await (protocol.list(Task) if command.done is None else protocol.search(Task, done=command.done))
    return [t.as_dict() for t in tasks]


async def log_completion(event: TaskCompleted) -> str:
    completed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return f"{event.title} completed at {completed_at}"
