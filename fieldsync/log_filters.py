"""Keep OAuth secrets out of logs.

QuickBooks sends the single-use authorization `code` (and our CSRF `state`) to /quickbooks/callback/ in the query
string, and a signed-out visit carries them on into /accounts/login/?next=... URL-encoded. Request lines are logged
by runserver (logger django.server) and by gunicorn's access log (gunicorn.conf.py logs the path without its query
string). This filter, on every handler of settings.LOGGING, rewrites any such value to [redacted] in whatever is logged.
"""

import logging
import re

# `code=` / `state=` after `?` or `&`, plain or URL-encoded once (%3F, %26, %3D) or twice (%253F ...).
_SECRET_PARAM = re.compile(
    r"(?P<name>(?:[?&]|%(?:25)?3F|%(?:25)?26)(?:code|state)(?:=|%(?:25)?3D))"
    r"(?P<value>[^&\s\"'%]+(?:%(?!(?:25)?26)[0-9A-Fa-f]{2}[^&\s\"'%]*)*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group('name')}[redacted]", text)


class RedactOAuthSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
