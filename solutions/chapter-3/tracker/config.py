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
