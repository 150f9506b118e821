"""Where messages go. Each channel sends one ``Message`` and raises on failure (the
notifier logs it; a delivery failure never fails a job):

- ``Webhook``: ``POST`` of the message as JSON, ``Content-Type: application/json``,
  ``X-Volkeeper-Event: <event>`` and, with a secret, ``X-Volkeeper-Signature:
  sha256=<hex HMAC-SHA256 of the exact body bytes under the secret>`` (GitHub's scheme:
  the receiver recomputes it over the raw body and compares in constant time).
- ``Smtp``: one plain-text e-mail to the configured recipients (STARTTLS by default).
- ``Apprise``: any Apprise URL (Slack, Teams, Discord, ntfy, Gotify, …) when the optional
  ``apprise`` package is installed.

``from_settings`` builds the configured channels; secrets are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from common.config import Settings

if TYPE_CHECKING:
    from common.notify.message import Message

log = logging.getLogger(__name__)
TIMEOUT = 10.0


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None: ...


def sign(secret: str, body: bytes) -> str:
    """The ``X-Volkeeper-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    def __init__(self, url: str, secret: str | None) -> None:
        self.url, self._secret = url, secret
        self.name = f"webhook {redact(url)}"

    def send(self, message: Message) -> None:
        import httpx

        body = json.dumps(message.as_json(), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "volkeeper",
                   "X-Volkeeper-Event": message.event}
        if self._secret:
            headers["X-Volkeeper-Signature"] = sign(self._secret, body)
        resp = httpx.post(self.url, content=body, headers=headers, timeout=TIMEOUT)
        if resp.status_code >= 300:
            raise RuntimeError(f"HTTP {resp.status_code}")


class Smtp:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.name = f"e-mail via {settings.notify_smtp_host}:{settings.notify_smtp_port}"

    def send(self, message: Message) -> None:
        s = self.s
        assert s.notify_smtp_host is not None
        mail = EmailMessage()
        mail["Subject"] = message.title
        mail["From"] = s.notify_smtp_from
        mail["To"] = ", ".join(s.smtp_recipients)
        mail["X-Volkeeper-Event"] = message.event
        mail.set_content(message.text())
        smtp: smtplib.SMTP
        if s.notify_smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(s.notify_smtp_host, s.notify_smtp_port, timeout=TIMEOUT,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.notify_smtp_host, s.notify_smtp_port, timeout=TIMEOUT)
        with smtp:
            if s.notify_smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.notify_smtp_user:
                password = s.notify_smtp_password.get_secret_value() \
                    if s.notify_smtp_password else ""
                smtp.login(s.notify_smtp_user, password)
            smtp.send_message(mail)


class Apprise:
    def __init__(self, urls: list[str]) -> None:
        import apprise

        self._apprise = apprise.Apprise()
        for url in urls:
            if not self._apprise.add(url):
                log.warning("notifications: Apprise does not understand the URL %s",
                            redact(url))
        self.name = f"apprise ({len(urls)} URL{'s' if len(urls) != 1 else ''})"

    def send(self, message: Message) -> None:
        if not self._apprise.notify(title=message.title, body=message.text()):
            raise RuntimeError("Apprise could not deliver to at least one URL")


_warned: list[bool] = []  # the missing-apprise warning, once per process


def configured(settings: Settings) -> bool:
    """Whether any channel is configured (else nothing is observed or sent)."""
    return settings.notifications_on


def from_settings(settings: Settings) -> list[Channel]:
    """The channels the settings configure (none: notifications are off)."""
    out: list[Channel] = []
    secret = settings.notify_webhook_secret.get_secret_value() \
        if settings.notify_webhook_secret else None
    other: list[str] = []
    for url in settings.notify_url_list:
        if url.lower().startswith(("http://", "https://")):
            out.append(Webhook(url, secret))
        else:
            other.append(url)
    if other:
        try:
            out.append(Apprise(other))
        except ImportError:
            if not _warned:
                _warned.append(True)
                log.warning("notifications: %d URL(s) in VOLKEEPER_NOTIFY_URLS need the "
                            "optional apprise package (pip install apprise); they are "
                            "skipped", len(other))
    if settings.notify_smtp_host and settings.smtp_recipients:
        out.append(Smtp(settings))
    return out


def redact(url: str) -> str:
    """A URL fit for a log line: scheme and host, no path, user or token."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{host}/…"


def describe(channels: list[Any]) -> str:
    return ", ".join(c.name for c in channels) or "none"
