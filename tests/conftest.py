import os
import sys

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
