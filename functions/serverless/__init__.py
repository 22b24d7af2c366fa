"""The serverless half's own code (Lambda-only, Powertools allowed).

Webhook decoding and signatures, the voice flow, the callbacks, the CDR jobs and fetcher, and
every XML answer. The shared core the media node also uses is ``mapokezi``.
"""
