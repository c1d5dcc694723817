"""Team task tracker: the course's example API."""
