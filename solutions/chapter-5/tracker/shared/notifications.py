"""Telling people about their tasks: an event to the team's outside service (a webhook), and
an e-mail to whoever is assigned.

Both are I/O: they wait on the network. So both are `async def` and await their client, and
neither runs inside a request that must not wait for it: the routes hand them to
`BackgroundTasks`, which runs them after the response is sent. A failure there is logged; the
change it reports is already stored.
"""

import logging
from email.message import EmailMessage

import aiosmtplib
import httpx

from tracker.config import Settings
from tracker.models import Task
from tracker.schemas import TaskPublic

logger = logging.getLogger(__name__)


def task_event(event: str, task: Task) -> dict:
    """The webhook's body: the event's name and the task as the API shows it."""
    return {"event": event, "task": TaskPublic.model_validate(task).model_dump(mode="json")}


async def post_event(client: httpx.AsyncClient, settings: Settings, event: dict) -> httpx.Response:
    """POST one event to the outside service.

    Raises httpx.TimeoutException if it does not answer in time, httpx.HTTPStatusError if it
    answers with an error, and another httpx.RequestError if it cannot be reached.
    """
    response = await client.post(str(settings.webhook_url), json=event)
    response.raise_for_status()
    return response


async def send_event(client: httpx.AsyncClient, settings: Settings, event: dict) -> None:
    """post_event for a background task: a failure is logged, not raised."""
    try:
        await post_event(client, settings, event)
    except httpx.HTTPError as exc:
        logger.warning("webhook %s for task %s not delivered: %r", event["event"], event["task"]["id"], exc)


def assignment_mail(to: str, task: Task, settings: Settings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = f"Task assigned: {task.title}"
    message.set_content(f"You have been assigned task {task.id}, \"{task.title}\".\n")
    return message


async def send_mail(message: EmailMessage, settings: Settings) -> None:
    """Hand one message to the SMTP server; a failure is logged, not raised."""
    try:
        await aiosmtplib.send(message, hostname=settings.smtp_host, port=settings.smtp_port,
                              timeout=settings.smtp_timeout)
    except (aiosmtplib.SMTPException, OSError) as exc:
        logger.warning("mail to %s not sent: %r", message["To"], exc)
