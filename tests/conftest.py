import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
def mmdet_default_scope(request):
    """Tests under tests/mmdet run in mmdet's default scope, whatever ran
    before: nested builds (a bbox head's loss and predictor) resolve there."""
    if 'mmdet' not in request.node.path.parts:
        yield
        return
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield
