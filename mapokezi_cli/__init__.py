"""The operator's command line, ``mapokezi``: calls, profiles and numbers."""
