"""Doubles of the services the project cannot reach in tests: strict to their wire protocols."""
