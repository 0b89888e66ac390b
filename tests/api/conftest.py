"""Fixtures of the api tests (shared ones live in tests/conftest.py)."""
