"""A free TCP port for a test's process group or torchrun (the helper lives
in tests/conftest.py, for the tests outside tests/distributed too)."""
from helpers import free_port  # noqa: F401
