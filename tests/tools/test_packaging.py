"""The built wheel is a complete OpenMMLab package: `pip wheel .`, installed
into a throw-away venv over this environment's stack (so nothing big is
downloaded), carries configs, tools, model index and checkpoints in
etf_plugin/.mim, and `mim train` finds the configs inside the installed
package, away from this checkout."""
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest

from helpers import REPO_ROOT, run_tool


def _env():
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PYTHONPATH', None)  # only the installed package, not the repo
    return env


def _run(args, cwd):
    return run_tool(args, cwd=cwd, env=_env())


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('wheel')
    # --no-build-isolation: build with this environment's setuptools instead
    # of downloading one (what `pip wheel .` does otherwise).
    _run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', REPO_ROOT, '-w',
        str(out)
    ], cwd=out)
    wheels = list(out.glob('etf_plugin-*.whl'))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_ships_configs_tools_model_index_and_checkpoints(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    mim = 'etf_plugin/.mim/'
    for path in ('model-index.yml', 'configs/resnet32_digitslt_etf.py',
                 'configs/resnet50_imagenetlt_etf.py',
                 'configs/_base_/default_runtime.py',
                 'configs/etf/metafile.yml', 'configs/etf/README.md',
                 'configs/lt_baselines/metafile.yml', 'tools/train.py',
                 'tools/test.py', 'tools/common.py', 'tools/dist_train.sh'):
        assert mim + path in names, path
    assert any(n.startswith(mim + 'checkpoints/') and n.endswith('.pth')
               for n in names)
    assert 'etf_plugin/apis.py' in names
    # research code stays in the clone (research/), out of the wheel
    assert not any(n.startswith(('etf_plugin/analysis/', 'research/'))
                   or n == 'etf_plugin/det/benchmark.py' for n in names)
    assert not any('__pycache__' in n for n in names)
    info = zipfile.ZipFile(wheel).getinfo(mim + 'tools/dist_train.sh')
    assert info.external_attr >> 16 & 0o111, 'dist_train.sh lost its x bit'
    metadata = zipfile.ZipFile(wheel).read(
        [n for n in names if n.endswith('.dist-info/METADATA')][0]).decode()
    requires = [line for line in metadata.splitlines()
                if line.startswith('Requires-Dist:')]
    hard = [line for line in requires if 'extra ==' not in line]
    # mmdet and tensorboard are extras, not hard dependencies
    assert not any('mmdet' in line or 'tensorboard' in line for line in hard)
    assert any('mmdet' in line and 'extra == "mmdet"' in line
               for line in requires)
    assert any('openmim' in line and 'extra == "tests"' in line
               for line in requires)


@pytest.mark.slow
def test_mim_train_with_the_configs_of_the_installed_wheel(wheel, tmp_path):
    venv = tmp_path / 'venv'
    subprocess.run([
        sys.executable, '-m', 'venv', '--system-site-packages',
        str(venv)
    ], check=True, env=_env())
    python = str(venv / 'bin' / 'python')
    # --force-reinstall: the base interpreter holds the editable checkout
    # under the same version.
    _run([
        python, '-m', 'pip', 'install', '-q', '--no-deps',
        '--force-reinstall',
        str(wheel)
    ], cwd=tmp_path)
    work = tmp_path / 'elsewhere'
    work.mkdir()
    # one interpreter start: where the package, its .mim and the config are,
    # and the model zoo of the installed package (shipped weights, no
    # download)
    out = _run([
        python, '-c', 'import etf_plugin, etf_plugin.apis as a\n'
        'a.register_model_zoo()\n'
        'from mmpretrain import get_model\n'
        'm = get_model("resnet32_digitslt_etf", pretrained=True)\n'
        'print("located", etf_plugin.__file__, a.mim_dir(), '
        'a.get_config_path("resnet32_digitslt_etf"), m._metainfo.weights)'
    ], cwd=work)
    located = [ln for ln in out.splitlines() if ln.startswith('located')]
    package, mim, config, weights = located[0].split()[1:]
    site = str(venv)
    assert package.startswith(site), package  # not this checkout
    assert mim == osp.join(osp.dirname(package), '.mim')
    assert config.startswith(mim) and weights.startswith(mim)

    # MMPretrain's tools/train.py on the config inside the package
    out = _run([
        python, '-m', 'mim', 'train', 'mmpretrain', config, '--work-dir',
        str(work / 'upstream'), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1'
    ], cwd=work)
    assert 'accuracy/top1' in out, out[-3000:]
    assert (work / 'upstream' / 'epoch_1.pth').is_file()
    # mim finds the config by name in the installed package, and runs the
    # package's own tools/train.py
    out = _run([
        python, '-m', 'mim', 'train', 'etf_plugin',
        'resnet32_digitslt_etf.py', '--work-dir',
        str(work / 'ours'), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1'
    ], cwd=work)
    assert 'we find the config file in codebase etf_plugin' in out
    assert 'accuracy/top1' in out, out[-3000:]
