"""Doubles of the remote services Mapokezi talks to, speaking their documented wire protocols.

`make run` (the offline model, the Sautikit REST API), `make bench` and the tests use them:
``openai_realtime`` (OpenAI Realtime GA), ``gemini_live`` (Gemini Live BidiGenerateContent) and
``sautikit_api`` (Sautikit's REST API).
"""
