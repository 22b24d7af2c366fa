"""Mapokezi media node: Sautikit's media WebSocket bridged to a speech-to-speech model."""
