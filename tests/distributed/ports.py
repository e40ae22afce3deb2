"""A free TCP port for a test's process group or torchrun."""
import socket


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it), so that
    parallel test runs do not collide on torchrun's default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
