"""The conversation router, its handlers and flows, and per-conversation state."""
