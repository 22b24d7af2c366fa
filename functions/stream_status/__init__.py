"""POST /stream-status: Sautikit's media stream status callbacks."""
