"""MMDetection is optional: etf_plugin imports without it, and a broken
mmdet install only warns."""
import importlib.abc
import importlib.util
import subprocess
import sys

import pytest

import etf_plugin

WITHOUT_MMDET = '''
import sys
sys.modules['mmdet'] = None  # as if mmdet were not installed
import etf_plugin
from mmpretrain.registry import MODELS
assert MODELS.get('ETFHead') is not None
assert 'etf_plugin.det' not in sys.modules
print('imported without mmdet')
'''


@pytest.mark.slow  # a fresh interpreter imports all of etf_plugin
def test_imports_without_mmdet():
    result = subprocess.run([sys.executable, '-c', WITHOUT_MMDET],
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'imported without mmdet' in result.stdout


class BrokenMmdet(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mmdet`` and fails to import it the way mmdet 3.3 does next
    to mmcv 2.2 (an AssertionError from its version check)."""

    def find_spec(self, name, path=None, target=None):
        if name == 'mmdet':
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise AssertionError('MMCV==2.2.0 is used but incompatible.')


def test_broken_mmdet_only_warns(monkeypatch):
    monkeypatch.delitem(sys.modules, 'mmdet')
    monkeypatch.setattr(sys, 'meta_path', [BrokenMmdet(), *sys.meta_path])
    with pytest.warns(UserWarning, match='MMCV==2.2.0'):
        assert etf_plugin._mmdet_importable() is False
    assert 'mmdet' not in sys.modules


def test_mmdet_installed_here_is_used():
    assert etf_plugin._mmdet_importable()
    assert 'etf_plugin.det' in sys.modules
