"""The tracker's settings, in one place.

Still constants, and the secret still in the code: Chapter 5 turns this module into a typed
`Settings` class read from the environment. Every other module reads its settings from here.
"""

DATABASE_URL = "sqlite:///./tracker.db"
# HS256 wants at least 32 bytes.
SECRET_KEY = "change-me-this-is-not-a-secret-0123456789"
ALGORITHM = "HS256"
ACCESS_TOKEN_MINUTES = 30
LOGIN_LIMIT = "5 per 10 seconds"  # per username
WRITE_LIMIT = "100 per 10 seconds"  # per signed-in user

# The team's outside service, told about assignments and completed tasks (a webhook).
WEBHOOK_URL = "http://127.0.0.1:9000/hooks/tasks"
WEBHOOK_TIMEOUT = 2.0  # seconds, for each of connecting, sending, waiting for an answer
# Where e-mail goes out: an SMTP server (in development, one on this machine).
SMTP_HOST = "127.0.0.1"
SMTP_PORT = 8025
SMTP_TIMEOUT = 5.0  # seconds
MAIL_FROM = "tracker@example.com"
# The largest attachment a task may have, in bytes: 1 MiB.
MAX_ATTACHMENT_BYTES = 1_048_576
