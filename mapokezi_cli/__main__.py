"""``python -m mapokezi_cli``: the same as the ``mapokezi`` command."""

from mapokezi_cli.main import main

main()
