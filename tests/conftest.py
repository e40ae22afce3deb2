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
def default_scope(request):
    """Tests under tests/det run in mmdet's default scope, all others in
    mmpretrain's, whatever ran before: nested builds (a head's loss, a bbox
    head's predictor) resolve in the current default scope."""
    from mmengine.registry import DefaultScope
    scope = 'mmdet' if 'det' in request.node.path.parts else 'mmpretrain'
    with DefaultScope.overwrite_default_scope(scope):
        yield


def load_tool(path):
    """Import a script under tools/ (they are not a package) as a module.

    Args:
        path (str): The script's path relative to the repository root.
    """
    import importlib.util
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
