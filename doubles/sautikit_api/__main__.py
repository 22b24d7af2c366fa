"""``python -m doubles.sautikit_api``: the Sautikit REST API double on its own."""

from doubles.sautikit_api import main

main()
