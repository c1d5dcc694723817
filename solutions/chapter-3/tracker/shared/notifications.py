"""Telling people about their tasks."""

import time

from tracker.models import Task


def notify_assignee(task: Task) -> None:
    """Pretend to e-mail the assignee: a slow, blocking call (Chapter 4 deals with it)."""
    time.sleep(0.2)
    print("notified user", task.assignee_id, "about task", task.id)
