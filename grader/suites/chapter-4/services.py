"""The outside world of Chapter 4, run by the checks: the team's webhook service and an SMTP server.

Both listen on Unix sockets in the run's folder; the app host relays 127.0.0.1:9000 and
127.0.0.1:8025 inside the sandbox to them (`services` in chapter.toml), so the learner's app
reaches them at the addresses its settings name. They run in the checker's process, so a check
can change how the webhook service behaves (slow, failing, hanging, closing the connection)
and read what both received.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from aiosmtpd.controller import UnixSocketController

WEBHOOK_PATH = "/hooks/tasks"


@dataclass
class Delivery:
    """One request the webhook service received."""

    at: float  # time.monotonic() when it arrived
    method: str
    path: str
    body: Any  # the JSON body, or the raw text if it was not JSON
    connection: int  # which TCP connection (through the relay) it came on


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def describe(self) -> str:
        return (f"from {self.mail_from} to {', '.join(self.rcpt_tos)}, From: {self.message.get('From')}, "
                f"To: {self.message.get('To')}, Subject: {self.subject!r}")


@dataclass
class WebhookBehaviour:
    mode: str = "ok"  # ok or error (answer `status`), hang (never answer), close (drop the connection)
    delay: float = 0.0  # seconds to wait before answering, in mode ok and error
    status: int = 200


@dataclass
class WebhookService:
    path: Path
    behaviour: WebhookBehaviour = field(default_factory=WebhookBehaviour)
    deliveries: list[Delivery] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    _connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: a shared client reuses its connections

            def setup(self) -> None:
                super().setup()
                with service._lock:
                    service._connections += 1
                    self.connection_number = service._connections

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with service._lock:
                    service.deliveries.append(Delivery(time.monotonic(), "POST", self.path, body,
                                                       self.connection_number))
                behaviour = service.behaviour
                if behaviour.mode == "hang":
                    service.released.wait(60)
                    self.close_connection = True
                    return
                if behaviour.mode == "close":
                    self.close_connection = True
                    return
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                status = behaviour.status  # in mode ok, a 2xx of the check's choosing
                answer = b"" if status == 204 else json.dumps({"received": True}).encode()
                self.send_response(status)
                if answer:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True
            request_queue_size = 128

            def get_request(self):  # a Unix peer has no address; BaseHTTPRequestHandler wants one
                return self.socket.accept()[0], ("127.0.0.1", 0)

        self.path.unlink(missing_ok=True)
        self.server = Server(str(self.path), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook-service").start()

    def reset(self) -> None:
        self.released.set()  # whatever still hangs from the last check gives up
        with self._lock:
            self.deliveries.clear()
        self.behaviour = WebhookBehaviour()
        self.released = threading.Event()

    def events(self, name: str | None = None) -> list[Delivery]:
        with self._lock:
            found = list(self.deliveries)
        return [item for item in found
                if name is None or (isinstance(item.body, dict) and item.body.get("event") == name)]

    def wait_for(self, predicate, seconds: float) -> list[Delivery]:
        """The deliveries once `predicate(deliveries)` holds, or after `seconds` whatever they are."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.events()
            if predicate(found) or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class MailBehaviour:
    delay: float = 0.0  # seconds before the server accepts a message's data
    hang: bool = False  # never accept it: wait until the client gives up and drops the connection


class _MailHandler:
    def __init__(self, service: "MailService") -> None:
        self.service = service

    async def handle_DATA(self, server, session, envelope) -> str:
        service = self.service
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        started = time.monotonic()
        service.data_started.set()
        behaviour = service.behaviour
        if behaviour.hang:
            try:
                await asyncio.sleep(120)
            except asyncio.CancelledError:  # aiosmtpd cancels the handler when the client hangs up
                with service._lock:
                    service.abandoned.append(time.monotonic() - started)
                raise
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        with service._lock:
            service.inbox.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@dataclass
class MailService:
    path: Path
    inbox: list[Mail] = field(default_factory=list)
    behaviour: MailBehaviour = field(default_factory=MailBehaviour)
    abandoned: list[float] = field(default_factory=list)  # seconds from a message's data to the client hanging up
    data_started: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.controller = UnixSocketController(_MailHandler(self), unix_socket=str(self.path))
        self.controller.start()

    def reset(self) -> None:
        with self._lock:
            self.inbox.clear()
            self.abandoned.clear()
        self.behaviour = MailBehaviour()
        self.data_started.clear()

    def received(self) -> list[Mail]:
        with self._lock:
            return list(self.inbox)

    def wait_for(self, predicate, seconds: float) -> list[Mail]:
        deadline = time.monotonic() + seconds
        while True:
            found = self.received()
            if predicate(found) or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Outside:
    webhook: WebhookService
    mail: MailService

    def reset(self) -> None:
        self.webhook.reset()
        self.mail.reset()


def start_services(socket_for) -> Outside:
    """Start both services on the sockets `socket_for(name)` names (Supervisor.service_socket)."""
    outside = Outside(WebhookService(socket_for("webhook")), MailService(socket_for("smtp")))
    outside.webhook.start()
    outside.mail.start()
    return outside
