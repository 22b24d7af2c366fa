"""The shared core: the table's keys and every read and write, profiles, stream tokens, the
Sautikit REST client and configuration.

The Lambda functions, the media node and the operator CLI all import it; it imports none of
them and nothing Lambda-only (no Powertools).
"""
