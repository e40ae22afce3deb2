import os
import sys

import pytest

from helpers import REPO_ROOT


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: multi-process or training tests; CI runs them too')
    # Subprocesses (tools, torchrun) must import this checkout's etf_plugin,
    # as tools/dist_train.sh arranges for users.
    os.environ['PYTHONPATH'] = REPO_ROOT + os.pathsep + os.environ.get(
        'PYTHONPATH', '')
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)


@pytest.fixture(autouse=True)
def default_scope(request):
    """Tests under tests/det run in mmdet's default scope, all others in
    mmpretrain's, whatever ran before: nested builds (a head's loss, a bbox
    head's predictor) resolve in the current default scope."""
    from mmengine.registry import DefaultScope
    # relative to the checkout, which may itself sit in a folder named det
    parts = request.node.path.relative_to(REPO_ROOT).parts
    scope = 'mmdet' if 'det' in parts else 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        yield


@pytest.fixture(scope='session', autouse=True)
def verified_checkpoints():
    """The tests torch.load MMEngine checkpoints as a script outside a
    Runner does: after etf_plugin.engine.enable_verified_checkpoints()
    (``import etf_plugin`` alone changes nothing; runs of our configs switch
    it on in AtomicCheckpointHook, and the tools' tests run them in fresh
    processes)."""
    from etf_plugin.engine import enable_verified_checkpoints
    enable_verified_checkpoints()


@pytest.fixture
def one_thread():
    """torch on one thread during the test: on two busy cores torch's
    default two threads run ~10x slower, and on tiny problems extra BLAS
    threads only spin."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
