"""A small driver for a real headless Chromium, for the tests that look at the built book.

Chromium runs with `--remote-debugging-pipe`: it reads DevTools protocol commands (JSON, each
ended by a NUL byte) from its fd 3 and writes answers and events to its fd 4. So the driver needs
nothing beyond the standard library, and no port is opened. Every wait has a deadline, and the
browser's whole process group is killed at the end, whatever happened.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--remote-debugging-pipe"]


class BrowserError(RuntimeError):
    """Chromium is missing, crashed, hung, or refused a command."""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise BrowserError("The book's browser tests need Chromium: `sudo apt-get install chromium` (Debian/Ubuntu).")


class Browser:
    """One Chromium process; `tab()` opens a page to drive."""

    def __init__(self, profile: Path, timeout: float = 30):
        executable = find_chromium()
        self.timeout, self.log = timeout, profile / "chromium.log"
        profile.mkdir(parents=True, exist_ok=True)
        to_browser, self._to = os.pipe()
        self._from, from_browser = os.pipe()
        # Lift the browser's ends above 10, so that placing them on 3 and 4 cannot overwrite one another.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        for fd in (to_browser, from_browser):
            os.close(fd)
        # posix_spawn, not Popen(preexec_fn=...): it is safe while the test's HTTP server thread runs.
        log = (os.POSIX_SPAWN_OPEN, 1, str(self.log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.pid = os.posix_spawn(executable, [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                  os.environ, setsid=True, file_actions=[
                                      (os.POSIX_SPAWN_DUP2, ends[0], 3), (os.POSIX_SPAWN_DUP2, ends[1], 4),
                                      log, (os.POSIX_SPAWN_DUP2, 1, 2)])
        for fd in ends:
            os.close(fd)
        self._buffer, self._next_id = bytearray(), 0
        self.events: list[dict] = []
        self.handlers: dict[tuple[str | None, str], Callable[[dict], None]] = {}
        try:
            self.call("Browser.getVersion")  # fails here, clearly, if Chromium cannot start
        except BrowserError:
            self.close()
            raise

    def close(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):  # already gone, and reaped by someone else
            pass
        for fd in (self._to, self._from):
            os.close(fd)

    def _post(self, method: str, params: dict, session: str | None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError(f"Chromium closed its pipe before {method} (crashed?); its log: {self.log}") from None
        return self._next_id

    def _receive(self, deadline: float, doing: str) -> dict:
        while (end := self._buffer.find(b"\0")) < 0:
            if (left := deadline - time.monotonic()) <= 0 or not select.select([self._from], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer in time while {doing} (hung?); its log: {self.log}")
            if not (chunk := os.read(self._from, 1 << 20)):
                raise BrowserError(f"Chromium closed its pipe while {doing} (crashed?); its log: {self.log}")
            self._buffer += chunk
        message = json.loads(self._buffer[:end])
        del self._buffer[:end + 1]
        if (handler := self.handlers.get((message.get("sessionId"), message.get("method", "")))) is not None:
            handler(message["params"])
        elif "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, session: str | None = None, timeout: float | None = None, **params) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        sent, deadline = self._post(method, params, session), time.monotonic() + (timeout or self.timeout)
        while (message := self._receive(deadline, f"waiting for {method}")).get("id") != sent:
            pass
        if "error" in message:
            raise BrowserError(f"{method}({params}) failed: {message['error'].get('message')}")
        return message.get("result", {})

    def wait_for(self, session: str, method: str, test: Callable[[dict], bool], timeout: float | None = None) -> dict:
        """The first event `method` of `session` whose params pass `test` (kept ones first)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        found = [event for event in self.events if event.get("sessionId") == session and event["method"] == method]
        while not (found := [event for event in found if test(event["params"])]):
            message = self._receive(deadline, f"waiting for {method}")
            found = [message] if message.get("sessionId") == session and message.get("method") == method else []
        if found[0] in self.events:
            self.events.remove(found[0])
        return found[0]["params"]

    def tab(self) -> "Tab":
        return Tab(self)


class Tab:
    """A page whose requests may reach only 127.0.0.1: others fail at once (the tests run offline), and
    the console errors they cause are told apart by URL."""

    def __init__(self, browser: Browser):
        self.browser, self.blocked = browser, set()
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser.handlers[self.session, "Fetch.requestPaused"] = self._let_through_local_only
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(method)
        self.call("Page.setLifecycleEventsEnabled", enabled=True)
        self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])

    def call(self, method: str, **params) -> dict:
        return self.browser.call(method, self.session, **params)

    def _let_through_local_only(self, paused: dict) -> None:
        url, request = paused["request"]["url"], paused["requestId"]
        if urlsplit(url).hostname == "127.0.0.1":
            self.browser._post("Fetch.continueRequest", {"requestId": request}, self.session)
        else:
            self.blocked.add(url)
            refusal = {"requestId": request, "errorReason": "BlockedByClient"}
            self.browser._post("Fetch.failRequest", refusal, self.session)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def open(self, url: str, timeout: float = 30) -> list[str]:
        """Load `url` and wait until the network has been idle for half a second; return the console
        errors and uncaught exceptions it caused, except failed requests to outside hosts."""
        self.blocked.clear()
        self.browser.events = [event for event in self.browser.events if event.get("sessionId") != self.session]
        navigation = self.call("Page.navigate", url=url)
        if "errorText" in navigation:
            return [f"the page did not load: {navigation['errorText']}"]
        try:
            self.browser.wait_for(self.session, "Page.lifecycleEvent", timeout=timeout, test=lambda event: (
                event["name"] == "networkIdle" and event["loaderId"] == navigation.get("loaderId")))
        except BrowserError as error:
            raise BrowserError(f"{url} never finished loading: {error}") from None
        problems = []
        for event in [event for event in self.browser.events if event.get("sessionId") == self.session]:
            params = event["params"]
            if event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details["text"]
                line = details.get("lineNumber", -1) + 1  # the protocol counts lines from 0
                problems.append(f"uncaught exception at {details.get('url', '?')}:{line}: {text}")
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                problems.append("console.error: " + " ".join(str(arg.get("value", arg.get("description")))
                                                             for arg in params["args"]))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error" \
                    and params["entry"].get("url") not in self.blocked:
                problems.append(f"console error: {params['entry']['text']} ({params['entry'].get('url', '')})")
        return problems

    def evaluate(self, expression: str):
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}... raised {details.get('exception', details).get('description')}")
        return answer["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 16000) -> int:
        """The whole page as a PNG at the viewport's width, down to `max_height` CSS pixels (Chromium draws
        no taller picture than 16384): the height it shows."""
        width, height = self.evaluate("[document.documentElement.clientWidth, document.scrollingElement.scrollHeight]")
        clip = {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return clip["height"]
