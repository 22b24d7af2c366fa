"""POST /events: the number's events_url (call.started, call.completed, call.failed, …)."""
