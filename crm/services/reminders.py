"""Reminders of events and tasks: planned as rows, delivered by the worker.

Interface used by the agenda and task services (call inside the transaction that
changes the event or task, before commit):
- schedule_event(event): (re)plan the pending reminders of an event or series.
- schedule_task(task): (re)plan the pending reminder of a task.
"""


def schedule_event(event) -> None:
    """Plan the reminders of `event`; pending ones that no longer apply are cancelled."""


def schedule_task(task) -> None:
    """Plan the reminder of `task`; cancelled when the task is done or has no due time."""
