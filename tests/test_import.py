"""``import etf_plugin`` (and ``import etf_plugin.det``) registers classes
and changes nothing else, checked in fresh processes (issue 22, part 2):
MMEngine's checkpoint loaders and file backends, torch's safe-unpickler
allow-list, MMPretrain's ``ModelHub``, the existing registry entries, the
environment and the random state are what they were before the import;
the registries gain only etf_plugin's classes; ``import etf_plugin`` does
not import the MMDetection adapter, and works where mmdet cannot be
imported.

Run as a script, this file is the child process: it imports MMPretrain's
and MMDetection's stacks (what a Runner imports anyway), prints a snapshot,
imports ``etf_plugin``, prints another, imports ``etf_plugin.det``, prints
a third.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT

# What a Runner of either codebase imports before a config's custom_imports.
BASELINE = ('mmengine.runner', 'mmpretrain.apis', 'mmpretrain.datasets',
            'mmpretrain.engine', 'mmpretrain.evaluation', 'mmpretrain.models',
            'mmpretrain.visualization', 'mmdet.datasets', 'mmdet.engine',
            'mmdet.evaluation', 'mmdet.models', 'mmdet.visualization')


def _name(obj) -> str:
    return f'{getattr(obj, "__module__", "?")}.' \
           f'{getattr(obj, "__qualname__", repr(obj))}'


def _registries():
    import importlib

    from mmengine.registry import Registry
    found = {}
    for package in ('mmengine', 'mmpretrain', 'mmdet'):
        try:
            module = importlib.import_module(f'{package}.registry')
        except ImportError:
            continue
        for registry in vars(module).values():
            if isinstance(registry, Registry):
                found[f'{registry.scope}.{registry.name}'] = {
                    key: _name(cls)
                    for key, cls in registry.module_dict.items()
                }
    return found


def snapshot() -> dict:
    """The process-wide state a plugin's import must leave alone."""
    import hashlib

    import numpy as np
    import torch
    from mmengine.fileio import FileClient
    from mmengine.fileio.backends import registry_utils
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmpretrain.apis import ModelHub
    tables = dict(
        checkpoint_loaders=CheckpointLoader._schemes,
        file_backends=registry_utils.backends,
        file_backend_prefixes=registry_utils.prefix_to_backends,
        file_client_backends=FileClient._backends,
        file_client_prefixes=FileClient._prefix_to_backends)
    named = {
        table: {key: _name(value) for key, value in entries.items()}
        for table, entries in tables.items()
    }
    return dict(
        **named,
        safe_globals=sorted(
            repr(entry) for entry in torch.serialization.get_safe_globals()),
        model_hub=sorted(ModelHub._models_dict),
        registries=_registries(),
        environ=dict(os.environ),
        random_state=hashlib.sha256(
            torch.get_rng_state().numpy().tobytes() +
            repr(np.random.get_state()).encode()).hexdigest(),
        torch_threads=torch.get_num_threads(),
        default_dtype=str(torch.get_default_dtype()),
        modules=sorted(
            name for name in sys.modules
            if name.split('.')[0] in ('mmdet', 'etf_plugin')),
    )


def _child(argv) -> None:
    import importlib
    if argv == ['without-mmdet']:
        sys.modules['mmdet'] = None  # `import mmdet` raises ImportError
        import etf_plugin  # noqa: F401
        print(json.dumps(sorted(sys.modules)))
        return
    for module in BASELINE:
        importlib.import_module(module)
    states = [snapshot()]
    for module in ('etf_plugin', 'etf_plugin.det'):
        importlib.import_module(module)
        states.append(snapshot())
    print(json.dumps(states))


def _run_child(*args):
    out = subprocess.run([sys.executable, __file__, *args],
                         capture_output=True, text=True, cwd=REPO_ROOT,
                         env=dict(os.environ, OMP_NUM_THREADS='1'),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture(scope='module')
def states():
    """Snapshots before, after ``import etf_plugin``, after ``import
    etf_plugin.det``, in one fresh process."""
    before, plugin, det = _run_child()
    return dict(before=before, plugin=plugin, det=det)


STEPS = [('before', 'plugin'), ('plugin', 'det')]


@pytest.mark.parametrize('old,new', STEPS)
def test_import_keeps_mmengine_checkpoint_loaders(states, old, new):
    assert states[new]['checkpoint_loaders'] == \
        states[old]['checkpoint_loaders']


@pytest.mark.parametrize('old,new', STEPS)
def test_import_keeps_mmengine_file_backends(states, old, new):
    for table in ('file_backends', 'file_backend_prefixes',
                  'file_client_backends', 'file_client_prefixes'):
        assert states[new][table] == states[old][table], table


@pytest.mark.parametrize('old,new', STEPS)
def test_import_keeps_torch_safe_globals(states, old, new):
    assert states[new]['safe_globals'] == states[old]['safe_globals']


@pytest.mark.parametrize('old,new', STEPS)
def test_import_keeps_mmpretrain_model_hub(states, old, new):
    assert states[new]['model_hub'] == states[old]['model_hub']


@pytest.mark.parametrize('old,new', STEPS)
def test_import_keeps_environment_and_global_torch_state(states, old, new):
    for key in ('environ', 'random_state', 'torch_threads', 'default_dtype'):
        assert states[new][key] == states[old][key], key


@pytest.mark.parametrize('old,new,package', [('before', 'plugin', 'etf_plugin'),
                                             ('plugin', 'det',
                                              'etf_plugin.det')])
def test_import_only_adds_its_own_registry_entries(states, old, new, package):
    added = []
    for registry, entries in states[new]['registries'].items():
        previous = states[old]['registries'].get(registry, {})
        for key, value in previous.items():
            assert entries.get(key) == value, (registry, key)
        added += [(registry, value) for key, value in entries.items()
                  if key not in previous]
    assert added, 'nothing registered'
    assert all(value.startswith(package + '.') for _, value in added), [
        entry for entry in added if not entry[1].startswith(package + '.')]
    if package == 'etf_plugin':
        # the MMDetection adapter is opt-in: nothing in mmdet's registries
        assert not [registry for registry, _ in added
                    if registry.startswith('mmdet.')]


def test_import_does_not_import_the_mmdet_adapter(states):
    new = set(states['plugin']['modules']) - set(states['before']['modules'])
    assert not [name for name in new if name.startswith('mmdet')]
    assert not [name for name in new if name.startswith('etf_plugin.det')]
    assert 'etf_plugin.det' in states['det']['modules']


def test_import_works_where_mmdet_does_not_import():
    modules = _run_child('without-mmdet')
    assert 'etf_plugin.models' in modules
    assert not [name for name in modules
                if name.startswith(('mmdet.', 'etf_plugin.det'))]


if __name__ == '__main__':
    sys.path.insert(0, REPO_ROOT)
    _child(sys.argv[1:])
