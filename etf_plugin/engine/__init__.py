from .checkpoint_io import enable_verified_checkpoints
from .hooks import *  # noqa: F401,F403
