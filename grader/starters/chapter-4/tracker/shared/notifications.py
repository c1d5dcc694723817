"""Telling people about their tasks: an event to the team's outside service (a webhook), and
an e-mail to whoever is assigned."""

import smtplib
import time
from email.message import EmailMessage

import httpx

from tracker.config import MAIL_FROM, SMTP_HOST, SMTP_PORT, WEBHOOK_URL
from tracker.models import Task
from tracker.schemas import TaskPublic


def task_event(event: str, task: Task) -> dict:
    """The webhook's body: the event's name and the task as the API shows it."""
    return {"event": event, "task": TaskPublic.model_validate(task).model_dump(mode="json")}


async def send_event(event: dict) -> httpx.Response:
    """POST one event to the outside service, trying three times."""
    for _ in range(3):
        try:
            return httpx.post(WEBHOOK_URL, json=event)
        except httpx.TransportError:
            time.sleep(0.5)  # give it a moment before the next try
    raise RuntimeError("the outside service could not be reached")


async def send_assignment_mail(to: str, task: Task) -> None:
    message = EmailMessage()
    message["From"] = MAIL_FROM
    message["To"] = to
    message["Subject"] = f"Task assigned: {task.title}"
    message.set_content(f"You have been assigned task {task.id}, \"{task.title}\".\n")
    with smtplib.SMTP(SMTP_HOST, SMTP_PORT) as smtp:
        smtp.send_message(message)
