"""The Flask app: webhooks, health, and (later) the staff console and JSON API."""
