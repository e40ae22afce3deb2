"""tools/install.sh and its decisions (tools/install_plan.py), without the
11-30 min mmcv compile:

- the decision table on faked environments: which torch, torchvision and
  mmcv actions, CPU or CUDA ops, which wheel-cache key (issue 22);
- a fresh venv holding another torch than the tested one: the installer
  keeps it and plans the mmcv build for it (issue 22);
- the mmcv build environment imports the *caller's* torch, also when the
  caller is a venv without system site packages (a venv made with
  ``--system-site-packages`` from inside a venv sees the base interpreter's
  packages instead) (issue 12);
- an installed ops-less mmcv 2.1.0 is replaced by the cached good wheel
  (a plain ``pip install`` of the same version would be a no-op), an
  ops-less wheel in the cache is deleted and never installed, and a wheel
  of an older, unkeyed cache is not used (issues 12, 22).

The force-reinstall test needs the cached mmcv wheel that a real install
leaves in ~/.cache/etf_plugin/wheels/<key> (CI's install step makes it
first).
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

from helpers import REPO_ROOT, load_tool

plan_tool = load_tool('tools/install_plan.py')
Facts, PlanError = plan_tool.Facts, plan_tool.PlanError

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


def _this_key():
    """The cache key of a CPU-ops mmcv build for the running torch."""
    import sysconfig

    import torch
    facts = Facts(
        python_tag=f'cp{sys.version_info.major}{sys.version_info.minor}',
        platform=sysconfig.get_platform().replace('-', '_').replace('.', '_'),
        torch=torch.__version__)
    return plan_tool.cache_key(facts, 'cpu')


def _good_cached_wheel():
    wheels = sorted(
        glob.glob(osp.join(REAL_CACHE, _this_key(), 'mmcv-2.1.0-cp*.whl')))
    if not wheels:
        pytest.skip(f'no cached mmcv 2.1.0 wheel with ops in '
                    f'{REAL_CACHE}/{_this_key()}: run `bash tools/install.sh`'
                    f' once (CI does before the tests)')
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
    holding, under this torch's key, the good wheel between two ops-less
    ones (one sorting before it, one after: the fallback's own name), and an
    unkeyed wheel of an older install in the cache root: the keyed good
    wheel must replace the installed mmcv (force-reinstall), both ops-less
    wheels be deleted, never installed, the unkeyed one be left alone, and
    torch be kept. One install run checks all (about a minute)."""
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
    keyed = cache / _this_key()
    keyed.mkdir(parents=True)
    os.symlink(good, keyed / osp.basename(good))
    before = fake_mmcv_wheel(
        keyed / 'mmcv-2.1.0-0-py2.py3-none-any.whl', marker='cached')
    after = fake_mmcv_wheel(keyed / OPSLESS_NAME, marker='cached')
    assert sorted(os.listdir(keyed)) == [
        osp.basename(before), osp.basename(good), osp.basename(after)]
    legacy = fake_mmcv_wheel(
        cache / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl', marker='legacy')
    torch_before = _torch_in(python)

    result = _run_install(python, ETF_PLUGIN_WHEEL_CACHE=str(cache))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert f'using cached {keyed / osp.basename(good)}' in out, out[-3000:]
    # the installed ops-less mmcv was replaced, in the venv itself
    path, has_ops, marker = _mmcv_in(python)
    assert has_ops and marker is None, out[-3000:]
    assert path.startswith(site), path
    # the ops-less cached wheels are gone, the unkeyed one is untouched
    assert sorted(os.listdir(keyed)) == [osp.basename(good)], out[-3000:]
    for name in (before, after):
        assert f'removing cached {osp.basename(name)}' in out, out[-3000:]
    assert osp.isfile(legacy)
    assert _torch_in(python) == torch_before


def _torch_in(python):
    """(torch.__version__, torch's folder) of an interpreter."""
    return subprocess.check_output(
        [python, '-c', 'import torch; print(torch.__version__, '
         'torch.__file__)'], text=True, env=_env()).split()


# ---------------------------------------------------------------------------
# The decision table, on faked environments.

RANGES = plan_tool.accepted_ranges()


def _facts(**fields):
    base = dict(python_tag='cp311', platform='linux_x86_64')
    return Facts(**{**base, **fields})


def _cpu_torch(version='2.5.1+cpu', **fields):
    """An environment with a CPU build of torch and its torchvision."""
    base = dict(torch=version, torch_dist=version,
                torchvision=plan_tool.torchvision_for(version) + '.1',
                torchvision_ops=True)
    return _facts(**{**base, **fields})


def _gpu_torch(nvcc='13.0', **fields):
    """A GPU machine with torch 2.11.0+cu130 (a PyPI wheel: pip knows it as
    2.11.0), its torchvision, and ``nvcc`` under CUDA_HOME."""
    base = dict(torch='2.11.0+cu130', torch_dist='2.11.0', torch_cuda='13.0',
                cuda_available=True, cuda_arch='9.0', nvcc=nvcc,
                torchvision='0.26.0', torchvision_ops=True)
    return _facts(**{**base, **fields})


def _working_mmcv(cuda=None):
    """An installed mmcv 2.1.0 whose ops run (on the GPU too when compiled
    with ``cuda``)."""
    return dict(mmcv='2.1.0', mmcv_ops=True, mmcv_compiled_cuda=cuda,
                mmcv_cuda_ops=cuda is not None)


def test_tested_stack_is_in_the_accepted_ranges():
    assert plan_tool._in_range(plan_tool.TESTED_TORCH, RANGES['torch'])
    assert plan_tool._in_range(plan_tool.TESTED_TORCHVISION,
                               RANGES['torchvision'])
    assert plan_tool._in_range(plan_tool.MMCV_VERSION, RANGES['mmcv'])
    assert plan_tool.TESTED_TORCHVISION.startswith(
        plan_tool.torchvision_for(plan_tool.TESTED_TORCH) + '.')
    # mmdet 3.x's cap applies: the installer installs the mmdet extra
    assert not plan_tool._in_range('2.2.0', RANGES['mmcv'])
    assert plan_tool.describe_range(RANGES['mmcv']) == '>=2.0.0, <2.2.0'


def test_no_torch_installs_the_tested_pair_and_decides_mmcv_later():
    plan = plan_tool.decide(_facts(), RANGES)
    assert (plan.torch, plan.torchvision, plan.mmcv) == \
        ('install', 'install', 'later')
    assert plan.pip_torch == ['torch==2.14.1', 'torchvision==0.29.1']
    assert plan.cache_key is None


def test_cpu_torch_is_kept_and_mmcv_built_with_cpu_ops_for_it():
    plan = plan_tool.decide(_cpu_torch('2.5.1+cpu'), RANGES)
    assert (plan.torch, plan.torchvision, plan.pip_torch) == \
        ('keep', 'keep', [])
    assert (plan.mmcv, plan.ops, plan.cuda) == ('install', 'cpu', None)
    assert plan.cache_key == 'cp311-linux_x86_64-torch2.5.1+cpu-cpu'
    assert 'mmcv is not installed' in plan.reasons['mmcv']
    assert 'CPU build' in plan.reasons['ops']


def test_old_torch_is_refused_not_replaced():
    with pytest.raises(PlanError, match='does not replace a torch'):
        plan_tool.decide(_cpu_torch('1.13.1+cpu'), RANGES)


@pytest.mark.parametrize('vision,ops,why', [
    (None, False, 'none is installed'),
    ('0.29.1', True, 'built for another torch'),
    ('0.28.0', False, 'do not run'),
])
def test_torchvision_that_does_not_fit_the_kept_torch_is_installed(
        vision, ops, why):
    facts = _cpu_torch('2.13.0+cpu', torchvision=vision, torchvision_ops=ops)
    plan = plan_tool.decide(facts, RANGES)
    assert (plan.torch, plan.torchvision) == ('keep', 'install')
    # torch pinned to the installed build: pip keeps it or fails
    assert plan.pip_torch == [
        'torchvision==0.28.*', 'torch==2.13.0+cpu', '--extra-index-url',
        'https://download.pytorch.org/whl/cpu']
    assert why in plan.reasons['torchvision']


def test_gpu_with_matching_nvcc_builds_cuda_ops():
    plan = plan_tool.decide(_gpu_torch(nvcc='13.0'), RANGES)
    assert (plan.torch, plan.torchvision) == ('keep', 'keep')
    assert (plan.mmcv, plan.ops, plan.cuda, plan.cuda_arch) == \
        ('install', 'cuda', '13.0', '9.0')
    assert plan.cache_key == \
        'cp311-linux_x86_64-torch2.11.0+cu130-cuda13.0-arch9.0'
    # a torchvision of PyPI: no extra index needed (nothing installed)
    assert plan.pip_torch == []


def test_gpu_with_nvcc_of_another_minor_version_still_builds_cuda_ops():
    plan = plan_tool.decide(_gpu_torch(nvcc='13.1'), RANGES)
    assert (plan.ops, plan.cuda) == ('cuda', '13.1')
    assert 'major version' in plan.reasons['ops']


@pytest.mark.parametrize('nvcc,why', [('12.8', 'does not match'),
                                      (None, 'no nvcc was found')])
def test_gpu_without_a_matching_nvcc_builds_cpu_ops_and_says_why(nvcc, why):
    plan = plan_tool.decide(_gpu_torch(nvcc=nvcc), RANGES)
    assert (plan.mmcv, plan.ops, plan.cuda) == ('install', 'cpu', None)
    assert why in plan.reasons['ops'] and 'CUDA_HOME' in plan.reasons['ops']
    assert plan.cache_key == 'cp311-linux_x86_64-torch2.11.0+cu130-cpu'


def test_force_cuda_overrides_either_way():
    # 1: CUDA ops without a visible GPU (torch's default architectures)
    facts = _gpu_torch(cuda_available=False, cuda_arch=None,
                       force_cuda='1')
    plan = plan_tool.decide(facts, RANGES)
    assert (plan.ops, plan.cuda, plan.cuda_arch) == ('cuda', '13.0', None)
    assert plan.cache_key.endswith('-cuda13.0-archdefault')
    assert plan.reasons['ops'] == 'FORCE_CUDA=1'
    # 0: CPU ops on a GPU machine with a matching nvcc
    plan = plan_tool.decide(_gpu_torch(force_cuda='0'), RANGES)
    assert (plan.ops, plan.reasons['ops']) == ('cpu', 'FORCE_CUDA=0')
    assert plan.cache_key.endswith('-cpu')


@pytest.mark.parametrize('facts,message', [
    (_cpu_torch(force_cuda='1'), 'CPU build'),
    (_gpu_torch(nvcc=None, force_cuda='1'), 'no nvcc'),
    (_gpu_torch(nvcc='12.8', force_cuda='1'), 'cannot build'),
    (_gpu_torch(force_cuda='yes'), 'set it to 1'),
])
def test_force_cuda_that_cannot_be_honoured_is_an_error(facts, message):
    with pytest.raises(PlanError, match=message):
        plan_tool.decide(facts, RANGES)


def test_working_mmcv_is_kept():
    plan = plan_tool.decide(_cpu_torch(**_working_mmcv()), RANGES)
    assert plan.mmcv == 'keep' and 'run on CPU' in plan.reasons['mmcv']
    plan = plan_tool.decide(_gpu_torch(**_working_mmcv(cuda='13.0')), RANGES)
    assert plan.mmcv == 'keep' and 'on the GPU too' in plan.reasons['mmcv']
    # an mmcv of the accepted range that is not the tested 2.1.0
    facts = _cpu_torch(**{**_working_mmcv(), 'mmcv': '2.0.1'})
    assert plan_tool.decide(facts, RANGES).mmcv == 'keep'


@pytest.mark.parametrize('mmcv,why', [
    (dict(mmcv='2.1.0', mmcv_ops=False), 'do not import or run'),
    (dict(mmcv='2.1.0', mmcv_lite=True), 'mmcv-lite'),
    (dict(_working_mmcv(), mmcv='2.2.0'), 'outside >=2.0.0, <2.2.0'),
])
def test_opsless_or_unaccepted_mmcv_is_rebuilt(mmcv, why):
    plan = plan_tool.decide(_cpu_torch(**mmcv), RANGES)
    assert (plan.mmcv, plan.ops) == ('install', 'cpu')
    assert why in plan.reasons['mmcv']


def test_cpu_only_mmcv_on_a_gpu_machine():
    # rebuilt with CUDA ops where nvcc matches torch's CUDA
    plan = plan_tool.decide(_gpu_torch(**_working_mmcv()), RANGES)
    assert (plan.mmcv, plan.ops) == ('install', 'cuda')
    assert 'CPU ops only' in plan.reasons['mmcv']
    # kept where a rebuild could only give CPU ops again
    plan = plan_tool.decide(_gpu_torch(nvcc=None, **_working_mmcv()), RANGES)
    assert plan.mmcv == 'keep'
    assert 'not on the GPU' in plan.reasons['mmcv']
    # CUDA ops compiled but not running on this GPU (e.g. another arch)
    facts = _gpu_torch(**{**_working_mmcv(cuda='13.0'),
                          'mmcv_cuda_ops': False})
    plan = plan_tool.decide(facts, RANGES)
    assert (plan.mmcv, plan.ops) == ('install', 'cuda')
    assert 'do not run on the GPU' in plan.reasons['mmcv']


def test_cache_key_differs_per_compatibility_fact():
    keys = {
        plan_tool.cache_key(_facts(torch=torch), 'cpu')
        for torch in ('2.14.1+cu130', '2.14.1+cpu', '2.14.1', '2.13.0+cpu')
    }
    assert len(keys) == 4
    facts = _facts(torch='2.11.0+cu130')
    assert len({
        plan_tool.cache_key(facts, 'cpu'),
        plan_tool.cache_key(facts, 'cuda', '13.0', '9.0'),
        plan_tool.cache_key(facts, 'cuda', '13.1', '9.0'),
        plan_tool.cache_key(facts, 'cuda', '13.0', '8.0;9.0'),
        plan_tool.cache_key(facts, 'cuda', '13.0', None),
        plan_tool.cache_key(_facts(torch='2.11.0+cu130', python_tag='cp310'),
                            'cpu'),
        plan_tool.cache_key(_facts(torch='2.11.0+cu130',
                                   platform='linux_aarch64'), 'cpu'),
    }) == 7
    assert '/' not in plan_tool.cache_key(facts, 'cuda', '13.0', '8.0;9.0+PTX')


def _wheel_with_ops(path):
    """A wheel that looks like one with compiled ops (an empty _ext)."""
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('mmcv/__init__.py', "__version__ = '2.1.0'\n")
        archive.writestr('mmcv/_ext.cpython-311-x86_64-linux-gnu.so', b'')
    return str(path)


def test_cached_wheel_is_used_only_for_its_key(tmp_path):
    cache = tmp_path / 'cache'
    key = plan_tool.cache_key(_facts(torch='2.14.1+cu130'), 'cpu')
    other = plan_tool.cache_key(_facts(torch='2.13.0+cpu'), 'cpu')
    name = 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    (cache / other).mkdir(parents=True)
    _wheel_with_ops(cache / other / name)
    _wheel_with_ops(cache / name)  # an unkeyed one of an older install
    assert plan_tool.find_cached_wheel(str(cache), key) is None
    assert plan_tool.legacy_wheels(str(cache)) == [str(cache / name)]
    (cache / key).mkdir()
    wheel = _wheel_with_ops(cache / key / name)
    assert plan_tool.find_cached_wheel(str(cache), key) == wheel
    # another mmcv version is not this build
    assert plan_tool.find_cached_wheel(str(cache), key, '2.0.1') is None


def test_unkeyed_wheels_get_an_adoption_note_only_when_a_build_is_due(
        tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir()
    legacy = _wheel_with_ops(cache / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl')
    facts = _cpu_torch('2.14.1+cpu')
    plan = plan_tool.decide(facts, RANGES)
    notes = plan_tool.legacy_notes(str(cache), plan, facts)
    assert len(notes) == 1 and f'adopt-cache {legacy}' in notes[0]
    assert plan.cache_key in notes[0]
    # once the key has its wheel (or mmcv is kept), no note
    (cache / plan.cache_key).mkdir()
    _wheel_with_ops(cache / plan.cache_key / osp.basename(legacy))
    assert plan_tool.legacy_notes(str(cache), plan, facts) == []
    facts = _cpu_torch('2.14.1+cpu', **_working_mmcv())
    plan = plan_tool.decide(facts, RANGES)
    assert plan_tool.legacy_notes(str(cache), plan, facts) == []


def test_store_and_adopt_refuse_wheels_without_ops(tmp_path):
    opsless = fake_mmcv_wheel(tmp_path / OPSLESS_NAME, marker='x')
    cache = tmp_path / 'cache'
    assert plan_tool.main(['store-wheel', '--cache', str(cache), opsless,
                           'some-key']) == 1
    assert not cache.exists()
    with pytest.raises(PlanError, match='no compiled'):
        plan_tool.adopt_cache(opsless, str(cache))


@pytest.mark.slow
def test_adopt_cache_files_a_working_wheel_under_its_key(tmp_path):
    """The migration of an unkeyed cache: a wheel whose ops import and
    run with this torch is filed under this torch's key; one whose compiled
    ops do not load (an empty _ext here) is refused."""
    good = _good_cached_wheel()
    cache = tmp_path / 'cache'
    target = plan_tool.adopt_cache(good, str(cache))
    assert target == str(cache / _this_key() / osp.basename(good))
    assert osp.isfile(target) and osp.isfile(good)
    broken = _wheel_with_ops(tmp_path / osp.basename(good))
    with pytest.raises(PlanError, match='does not work with torch'):
        plan_tool.adopt_cache(broken, str(tmp_path / 'other'))
    assert not (tmp_path / 'other').exists()


def test_plan_of_this_environment_matches_its_facts():
    """The real fact-gathering on the test interpreter (torch, mmcv with
    ops installed by tools/install.sh): keep everything."""
    facts = plan_tool.gather_facts()
    import torch
    assert facts.torch == torch.__version__
    assert facts.torch_cuda == torch.version.cuda
    assert facts.mmcv_ops and facts.torchvision_ops
    plan = plan_tool.decide(facts, RANGES)
    assert (plan.torch, plan.torchvision) == ('keep', 'keep')
    if not torch.cuda.is_available():
        assert (plan.mmcv, plan.ops) == ('keep', 'cpu')


# ---------------------------------------------------------------------------
# A fresh venv with another torch than the tested one.

OTHER_TORCH = 'torch==2.13.0+cpu'


@pytest.mark.slow
def test_fresh_venv_with_another_torch_keeps_it_and_plans_for_it(tmp_path):
    """A venv (no system site packages) holding only torch 2.13.0+cpu (a
    CPU wheel of another minor version than the tested 2.14.1, ~190 MB,
    ~20 s to install from pip's cache): ``install.sh --plan`` keeps that
    torch, plans torchvision 0.28 for it and an mmcv build with CPU ops
    against it, under that torch's cache key, and changes nothing;
    ``--check-build-env`` shows the mmcv build would compile against it."""
    python = _venv(tmp_path / 'venv', system_site_packages=False)
    installed = subprocess.run(
        [python, '-m', 'pip', 'install', '-q', OTHER_TORCH],
        capture_output=True, text=True, env=_env())
    assert installed.returncode == 0, (
        f'pip could not install {OTHER_TORCH} (this test needs it from '
        f'pip\'s index, find-links or cache):\n{installed.stderr[-2000:]}')
    freeze = [python, '-m', 'pip', 'freeze', '--all']
    packages_before = subprocess.check_output(freeze, text=True, env=_env())
    torch_before = _torch_in(python)
    assert torch_before[0] == '2.13.0+cpu'

    result = _run_install(python, '--plan', timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    print(out)  # the plan, for the log (pytest -s)
    assert '[install]   torch:       keep 2.13.0+cpu' in out, out
    assert '[install]   torchvision: install 0.28.* for torch 2.13.0+cpu' \
        in out, out
    assert '[install]   mmcv:        install 2.1.0 built for torch ' \
        '2.13.0+cpu (mmcv is not installed)' in out, out
    assert '[install]   mmcv ops:    cpu (torch 2.13.0+cpu is a CPU build)' \
        in out, out
    assert '[install]   cache key:   cp311-linux_x86_64-torch2.13.0+cpu-cpu' \
        in out, out
    assert '--plan: nothing changed' in out
    assert _torch_in(python) == torch_before
    assert subprocess.check_output(freeze, text=True,
                                   env=_env()) == packages_before

    result = _run_install(python, '--check-build-env', timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    build = [line for line in result.stdout.splitlines()
             if line.startswith('build torch:')]
    assert build == [f'build torch:  {" ".join(torch_before[:1])} '
                     f'{osp.dirname(osp.realpath(torch_before[1]))}'], out
    assert _torch_in(python) == torch_before
