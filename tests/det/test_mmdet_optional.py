"""MMDetection is optional and opt-in: etf_plugin imports without it, and
``import etf_plugin.det`` (an mmdet config's ``custom_imports``) only adds
the adapter's classes to mmdet's registries."""
import subprocess
import sys

import pytest

WITHOUT_MMDET = '''
import sys
sys.modules['mmdet'] = None  # as if mmdet were not installed
import etf_plugin
from mmpretrain.registry import MODELS
assert MODELS.get('ETFHead') is not None
assert 'etf_plugin.det' not in sys.modules
print('imported without mmdet')
'''

# mmdet's own modules first, so that what is left to appear is ours
ONLY_REGISTERS = '''
import torch
import mmdet.datasets, mmdet.engine, mmdet.evaluation, mmdet.models
import mmdet.visualization
from mmdet import registry
from mmengine.registry import DefaultScope, Registry

registries = {name: value for name, value in vars(registry).items()
              if isinstance(value, Registry)}
before = {name: dict(r.module_dict) for name, r in registries.items()}
state = (torch.get_num_threads(), torch.get_default_dtype(),
         torch.is_grad_enabled(), DefaultScope.get_current_instance())

import etf_plugin.det

added = {}
for name, r in registries.items():
    for key, value in before[name].items():
        assert r.module_dict[key] is value, (name, key, 'replaced')
    new = set(r.module_dict) - set(before[name])
    if new:
        added[name] = sorted(new)
print(added)
assert added == {
    'DATASETS': ['SyntheticShapes'],
    'HOOKS': ['RoIClassifierCheckHook'],
    'MODELS': ['DotRegressionLoss', 'ETFBBoxHead', 'ETFObjectnessLoss',
               'ETFObjectnessPredictor', 'ETFPredictor'],
}, added
assert state == (torch.get_num_threads(), torch.get_default_dtype(),
                 torch.is_grad_enabled(), DefaultScope.get_current_instance())
print('only registered')
'''


def run_fresh(script):
    return subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          timeout=300)


@pytest.mark.slow  # a fresh interpreter imports all of etf_plugin
def test_imports_without_mmdet():
    result = run_fresh(WITHOUT_MMDET)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'imported without mmdet' in result.stdout


@pytest.mark.slow  # a fresh interpreter imports mmdet and etf_plugin
def test_importing_the_adapter_only_registers():
    result = run_fresh(ONLY_REGISTERS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'only registered' in result.stdout
