"""tools/install.sh in a virtualenv (issue 12, part 1), without the 11-30 min
mmcv compile:

- the mmcv build environment imports the *caller's* torch, also when the
  caller is a venv without system site packages (a venv made with
  ``--system-site-packages`` from inside a venv sees the base interpreter's
  packages instead);
- an installed ops-less mmcv 2.1.0 is replaced by the cached good wheel
  (a plain ``pip install`` of the same version would be a no-op);
- an ops-less wheel in the cache is deleted and never installed.

The force-reinstall tests need the cached mmcv wheel that a real install
leaves in ~/.cache/etf_plugin/wheels (CI's install step makes it first).
"""
import base64
import glob
import hashlib
import os
import os.path as osp
import subprocess
import sys
import zipfile

import pytest

from helpers import REPO_ROOT

INSTALL_SH = osp.join(REPO_ROOT, 'tools', 'install.sh')
REAL_CACHE = osp.join(
    osp.expanduser('~'), '.cache', 'etf_plugin', 'wheels')
# The file name mmcv 2.1.0's setup.py gives its silent pure-Python fallback.
OPSLESS_NAME = 'mmcv-2.1.0-py2.py3-none-any.whl'


def _env(**extra):
    env = dict(os.environ)
    # tests/conftest.py puts the checkout on PYTHONPATH; a venv must see only
    # its own site directories (and the ones it links to).
    env.pop('PYTHONPATH', None)
    env.pop('PYTHONHOME', None)
    env.update(extra)
    return env


def _venv(path, system_site_packages):
    args = [sys.executable, '-m', 'venv', str(path)]
    if system_site_packages:
        args.insert(3, '--system-site-packages')
    subprocess.run(args, check=True, env=_env())
    return osp.join(str(path), 'bin', 'python')


def _site_packages(python):
    return subprocess.check_output(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'], text=True, env=_env()).strip()


def _run_install(python, *args, timeout=600, **env):
    return subprocess.run(
        ['bash', INSTALL_SH, *args],
        env=_env(PYTHON=python, **env),
        capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def fake_mmcv_wheel(path, marker):
    """Write an mmcv 2.1.0 wheel without ops (no mmcv/_ext, no mmcv.ops),
    like the one mmcv's setup.py silently builds when it cannot import
    torch. ``mmcv.FAKE`` holds ``marker``."""
    files = {
        'mmcv/__init__.py':
        f"__version__ = '2.1.0'\nFAKE = {marker!r}\n",
        'mmcv-2.1.0.dist-info/METADATA':
        'Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n',
        'mmcv-2.1.0.dist-info/WHEEL':
        'Wheel-Version: 1.0\nGenerator: etf_plugin-tests\n'
        'Root-Is-Purelib: true\nTag: py2-none-any\nTag: py3-none-any\n',
    }
    record = []
    with zipfile.ZipFile(path, 'w') as archive:
        for name, text in files.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()).rstrip(b'=').decode()
            record.append(f'{name},sha256={digest},{len(data)}')
        record.append('mmcv-2.1.0.dist-info/RECORD,,')
        archive.writestr('mmcv-2.1.0.dist-info/RECORD',
                         '\n'.join(record) + '\n')
    return str(path)


def _good_cached_wheel():
    wheels = sorted(glob.glob(osp.join(REAL_CACHE, 'mmcv-2.1.0-cp*.whl')))
    if not wheels:
        pytest.skip(f'no cached mmcv 2.1.0 wheel with ops in {REAL_CACHE}: '
                    f'run `bash tools/install.sh` once (CI does before the '
                    f'tests)')
    return wheels[0]


def _mmcv_in(python):
    """(file of the mmcv the interpreter imports, whether mmcv.ops imports,
    its FAKE marker or None)."""
    out = subprocess.run(
        [python, '-c', 'import mmcv; print(mmcv.__file__); '
         'print(getattr(mmcv, "FAKE", None))\n'
         'try:\n import mmcv.ops; print(True)\n'
         'except ImportError: print(False)'],
        capture_output=True, text=True, env=_env(), check=True)
    path, marker, ops = out.stdout.split()
    return path, ops == 'True', None if marker == 'None' else marker


def test_build_env_sees_the_callers_torch_in_a_fresh_venv(tmp_path):
    """A venv without system site packages holding a fake torch: the build
    environment must import that torch, not the base interpreter's."""
    python = _venv(tmp_path / 'venv', system_site_packages=False)
    fake = osp.join(_site_packages(python), 'torch')
    os.makedirs(fake)
    with open(osp.join(fake, '__init__.py'), 'w') as f:
        f.write("__version__ = '0.0.0+caller'\n")

    result = _run_install(python, '--check-build-env', timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    lines = dict(
        line.split(':', 1) for line in result.stdout.splitlines()
        if line.startswith(('caller torch:', 'build torch:')))
    caller, build = lines['caller torch'].split(), lines['build torch'].split()
    assert caller == ['0.0.0+caller', osp.realpath(fake)], out[-3000:]
    assert build == caller, out[-3000:]


@pytest.mark.slow
def test_opsless_mmcv_is_replaced_and_opsless_cached_wheels_deleted(tmp_path):
    """In a venv over the base interpreter's stack, with an ops-less mmcv
    2.1.0 installed in the venv (the issue's second trap) and a cache
    holding the good wheel between two ops-less ones (one sorting before it,
    one after: the fallback's own name): the good wheel must replace the
    installed mmcv (force-reinstall), and both ops-less wheels be deleted,
    never installed. One install run checks both (about a minute)."""
    good = _good_cached_wheel()
    python = _venv(tmp_path / 'venv', system_site_packages=True)
    site = _site_packages(python)
    # --force-reinstall: the same version is installed in the base
    # interpreter, which a plain install would call "already installed".
    subprocess.run([
        python, '-m', 'pip', 'install', '-q', '--no-deps',
        '--force-reinstall',
        fake_mmcv_wheel(tmp_path / OPSLESS_NAME, marker='installed')
    ], check=True, env=_env())
    path, has_ops, marker = _mmcv_in(python)
    assert (marker, has_ops) == ('installed', False)
    assert path.startswith(site)

    cache = tmp_path / 'cache'
    cache.mkdir()
    os.symlink(good, cache / osp.basename(good))
    before = fake_mmcv_wheel(
        cache / 'mmcv-2.1.0-0-py2.py3-none-any.whl', marker='cached')
    after = fake_mmcv_wheel(cache / OPSLESS_NAME, marker='cached')
    assert sorted(os.listdir(cache)) == [
        osp.basename(before), osp.basename(good), osp.basename(after)]

    result = _run_install(python, ETF_PLUGIN_WHEEL_CACHE=str(cache))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f'using cached {cache / osp.basename(good)}' in out, out[-3000:]
    # the installed ops-less mmcv was replaced, in the venv itself
    path, has_ops, marker = _mmcv_in(python)
    assert has_ops and marker is None, out[-3000:]
    assert path.startswith(site), path
    # the ops-less cached wheels are gone
    assert sorted(os.listdir(cache)) == [osp.basename(good)], out[-3000:]
    for name in (before, after):
        assert f'removing cached {osp.basename(name)}' in out, out[-3000:]
