"""What the routers share: the database session, sign-in, guards and rate limits, notifications."""
