"""What ``tools/install.sh`` installs into an environment, and why.

The installer is a guest in the user's environment: it keeps a working
torch, keeps a working mmcv, and builds mmcv only when it must, against the
environment's own torch, with CUDA ops where they can run. This module holds
that logic: :func:`gather_facts` reads the environment of the interpreter
that runs it, :func:`decide` turns facts into a :class:`Plan` (a pure
function, tested with faked environments), and the cache helpers find a
built mmcv wheel under the key that says what it is compatible with.

Command line (``install.sh`` calls it with the target interpreter)::

    python tools/install_plan.py plan [--shell]  # the plan for this env
    python tools/install_plan.py facts           # the facts, as JSON
    python tools/install_plan.py adopt-cache WHEEL
        # file an mmcv wheel of an older install (the cache had no keys)
        # under this environment's key, after checking it imports here
    python tools/install_plan.py store-wheel WHEEL KEY  # cache a build

It needs only the standard library and the ``packaging`` copy every pip
carries, so it runs in a bare venv.
"""
import argparse
import json
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from typing import List, Optional

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError:  # a bare venv: pip's own copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import Version
try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib

#: The stack CI runs: installed only into an environment without torch.
TESTED_TORCH = '2.14.1'
TESTED_TORCHVISION = '0.29.1'
#: The mmcv the installer builds when the installed one does not do.
MMCV_VERSION = '2.1.0'
PYPROJECT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                     'pyproject.toml')
DEFAULT_CACHE = osp.join(
    osp.expanduser('~'), '.cache', 'etf_plugin', 'wheels')
#: The PyTorch index of a local build label (``+cpu``, ``+cu121``, ...);
#: torchvision for such a torch comes from there, as pytorch.org says.
PYTORCH_INDEX = 'https://download.pytorch.org/whl/{label}'


def _log(message: str) -> None:
    print(f'[install] {message}', file=sys.stderr)


class PlanError(RuntimeError):
    """The environment cannot be installed into as it is; the message says
    what the user should change."""


@dataclass
class Facts:
    """What the installer needs to know about an environment.

    Args:
        python_tag (str): e.g. ``'cp311'``.
        platform (str): e.g. ``'linux_x86_64'``.
        torch (str, optional): ``torch.__version__`` (with its ``+cu130`` /
            ``+cpu`` part), None when torch does not import.
        torch_dist (str, optional): torch's version as pip knows it (a
            PyPI wheel has no local part), for pins.
        torch_cuda (str, optional): ``torch.version.cuda``; None for a
            CPU build.
        cuda_available (bool): ``torch.cuda.is_available()``.
        cuda_arch (str, optional): The GPU architectures a CUDA build
            targets: ``TORCH_CUDA_ARCH_LIST``, else the visible GPUs'
            (``'9.0'``), None for torch's default list (no GPU visible).
        nvcc (str, optional): The release of the nvcc under torch's
            ``CUDA_HOME`` (``'13.0'``), None when there is none.
        torchvision (str, optional): ``torchvision.__version__``.
        torchvision_ops (bool): ``torchvision.ops.nms`` runs with this
            torch.
        mmcv (str, optional): ``mmcv.__version__``.
        mmcv_lite (bool): The installed mmcv is the ``mmcv-lite``
            distribution (no ops; it must be uninstalled first).
        mmcv_ops (bool): ``mmcv.ops`` imports and its nms runs on CPU.
        mmcv_compiled_cuda (str, optional): The CUDA version mmcv's ops were
            compiled with, None for CPU-only ops.
        mmcv_cuda_ops (bool): mmcv's nms runs on CUDA tensors.
        force_cuda (str, optional): The ``FORCE_CUDA`` variable.
    """
    python_tag: str
    platform: str
    torch: Optional[str] = None
    torch_dist: Optional[str] = None
    torch_cuda: Optional[str] = None
    cuda_available: bool = False
    cuda_arch: Optional[str] = None
    nvcc: Optional[str] = None
    torchvision: Optional[str] = None
    torchvision_ops: bool = False
    mmcv: Optional[str] = None
    mmcv_lite: bool = False
    mmcv_ops: bool = False
    mmcv_compiled_cuda: Optional[str] = None
    mmcv_cuda_ops: bool = False
    force_cuda: Optional[str] = None


@dataclass
class Plan:
    """What to do, each with its reason.

    Args:
        torch (str): ``'keep'`` or ``'install'``.
        torchvision (str): ``'keep'`` or ``'install'``.
        pip_torch (list[str]): pip arguments of the torch step (empty when
            both are kept).
        mmcv (str): ``'keep'``, ``'install'`` (a cached wheel or a build)
            or ``'later'`` (decided once torch is installed).
        ops (str): ``'cpu'`` or ``'cuda'``: the ops an mmcv build gets.
        cuda (str, optional): The CUDA version of a CUDA build (nvcc's).
        cuda_arch (str, optional): The GPU architectures of a CUDA build,
            None for torch's default list.
        cache_key (str, optional): The wheel-cache folder of this
            environment's mmcv build.
        reasons (dict): A reason per decision (``torch``, ``torchvision``,
            ``mmcv``, ``ops``).
    """
    torch: str
    torchvision: str
    pip_torch: List[str] = field(default_factory=list)
    mmcv: str = 'later'
    ops: str = 'cpu'
    cuda: Optional[str] = None
    cuda_arch: Optional[str] = None
    cache_key: Optional[str] = None
    reasons: dict = field(default_factory=dict)


def accepted_ranges(pyproject: str = PYPROJECT) -> dict:
    """The version ranges ``pyproject.toml`` accepts for torch, torchvision
    and mmcv, intersected over the dependencies the installer installs (the
    package's own and its ``mmdet`` extra).

    Args:
        pyproject (str): Path of ``pyproject.toml``.

    Returns:
        dict: ``{'torch': SpecifierSet, 'torchvision': ..., 'mmcv': ...}``.
    """
    with open(pyproject, 'rb') as f:
        project = tomllib.load(f)['project']
    requirements = project['dependencies'] + \
        project['optional-dependencies']['mmdet']
    ranges = {name: SpecifierSet() for name in ('torch', 'torchvision', 'mmcv')}
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name in ranges:
            ranges[requirement.name] &= requirement.specifier
    return ranges


def describe_range(specifier: SpecifierSet) -> str:
    """A range as its tightest bounds, e.g. ``'>=2.0.0, <2.2.0'`` for
    ``'>=2.0.0rc4,>=2.0.0,<2.4.0,<2.2.0'``."""
    lower = [s for s in specifier if s.operator in ('>=', '>')]
    upper = [s for s in specifier if s.operator in ('<', '<=')]
    bounds = []
    if lower:
        bounds.append(str(max(lower, key=lambda s: Version(s.version))))
    if upper:
        bounds.append(str(min(upper, key=lambda s: Version(s.version))))
    other = [str(s) for s in specifier if s not in lower + upper]
    return ', '.join(bounds + sorted(other))


def _in_range(version: str, specifier: SpecifierSet) -> bool:
    return specifier.contains(Version(version), prereleases=True)


def _major_minor(version: str) -> tuple:
    return Version(version).release[:2]


def torchvision_for(torch_version: str) -> str:
    """The torchvision minor series built for a torch 2.x release.

    Args:
        torch_version (str): e.g. ``'2.13.0+cpu'``.

    Returns:
        str: e.g. ``'0.28'`` (torchvision 0.(15+k) goes with torch 2.k).
    """
    major, minor = _major_minor(torch_version)
    return f'0.{minor + 15}'


def cache_key(facts: Facts, ops: str, cuda: Optional[str] = None,
              cuda_arch: Optional[str] = None) -> str:
    """The wheel-cache folder of an mmcv build: everything a compiled mmcv
    wheel must match to import and run (Python, platform, the exact torch
    build, the ops and, for CUDA ops, the CUDA version and GPU
    architectures).

    Args:
        facts (Facts): The environment (python tag, platform, torch).
        ops (str): ``'cpu'`` or ``'cuda'``.
        cuda (str, optional): The CUDA version of a CUDA build.
        cuda_arch (str, optional): Its GPU architectures (``'8.0;9.0'``),
            None for torch's default list.

    Returns:
        str: e.g. ``'cp311-linux_x86_64-torch2.14.1+cu130-cpu'``.
    """
    key = f'{facts.python_tag}-{facts.platform}-torch{facts.torch}-{ops}'
    if ops == 'cuda':
        arch = re.sub(r'[^0-9A-Za-z.+]+', '_', cuda_arch or 'default')
        key += f'{cuda}-arch{arch}'
    return key


def decide_torch(facts: Facts, ranges: dict) -> Plan:
    """The torch/torchvision part of the plan: install the tested pair only
    where no torch imports; otherwise keep torch, and a torchvision that
    matches it.

    Raises:
        PlanError: If the installed torch is older than the accepted range
            (the installer never replaces a torch).
    """
    if facts.torch is None:
        return Plan(
            torch='install', torchvision='install',
            pip_torch=[f'torch=={TESTED_TORCH}',
                       f'torchvision=={TESTED_TORCHVISION}'],
            reasons=dict(
                torch=f'{TESTED_TORCH} (no torch imports; the tested '
                f'version)',
                torchvision=f'{TESTED_TORCHVISION} (the tested version)'))
    if not _in_range(facts.torch, ranges['torch']):
        raise PlanError(
            f'torch {facts.torch} is installed, but etf_plugin needs torch'
            f'{ranges["torch"]}. The installer does not replace a torch: '
            f'install a newer one that matches your CUDA driver '
            f'(https://pytorch.org/get-started/locally/), or run it in a '
            f'fresh environment, where it installs torch {TESTED_TORCH}.')
    plan = Plan(torch='keep', torchvision='keep')
    plan.reasons['torch'] = (f'{facts.torch} (installed; accepted: '
                             f'{describe_range(ranges["torch"])})')
    series = torchvision_for(facts.torch)
    matches = (facts.torchvision is not None
               and _major_minor(facts.torchvision) == _major_minor(series)
               and facts.torchvision_ops)
    if matches:
        plan.reasons['torchvision'] = (
            f'{facts.torchvision} (installed; built for torch '
            f'{".".join(map(str, _major_minor(facts.torch)))}, its ops run)')
        return plan
    if facts.torchvision is None:
        why = 'none is installed'
    elif _major_minor(facts.torchvision) != _major_minor(series):
        why = f'the installed {facts.torchvision} is built for another torch'
    else:
        why = f'the ops of the installed {facts.torchvision} do not run'
    plan.torchvision = 'install'
    # torch pinned to what is installed: pip keeps it, or fails.
    plan.pip_torch = [f'torchvision=={series}.*', f'torch=={facts.torch_dist}']
    label = Version(facts.torch_dist).local
    if label:
        plan.pip_torch += ['--extra-index-url', PYTORCH_INDEX.format(
            label=label)]
    plan.reasons['torchvision'] = f'{series}.* for torch {facts.torch} ({why})'
    return plan


def decide_ops(facts: Facts) -> tuple:
    """CPU or CUDA ops for an mmcv build: CUDA when a GPU is visible to
    torch and a CUDA compiler of torch's CUDA major version is found;
    ``FORCE_CUDA=1``/``0`` decides instead when set.

    Returns:
        tuple: ``(ops, cuda, reason)``.

    Raises:
        PlanError: If ``FORCE_CUDA=1`` cannot be honoured, or
            ``FORCE_CUDA`` is neither 0 nor 1.
    """
    force = facts.force_cuda
    if force not in (None, '', '0', '1'):
        raise PlanError(f'FORCE_CUDA={force!r}: set it to 1 (build CUDA '
                        f'ops), 0 (CPU ops) or leave it unset (decide from '
                        f'the machine).')
    if force == '0':
        return 'cpu', None, 'FORCE_CUDA=0'
    torch_cuda = facts.torch_cuda
    if force == '1':
        if torch_cuda is None:
            raise PlanError(
                f'FORCE_CUDA=1, but torch {facts.torch} is a CPU build: '
                f'CUDA ops need a CUDA build of torch.')
        if facts.nvcc is None:
            raise PlanError(
                f'FORCE_CUDA=1, but no nvcc was found: set CUDA_HOME to a '
                f'CUDA {torch_cuda} toolkit.')
        if _major_minor(facts.nvcc)[0] != _major_minor(torch_cuda)[0]:
            raise PlanError(
                f'FORCE_CUDA=1, but nvcc {facts.nvcc} cannot build for '
                f'torch\'s CUDA {torch_cuda}: set CUDA_HOME to a CUDA '
                f'{torch_cuda} toolkit.')
        return 'cuda', facts.nvcc, 'FORCE_CUDA=1'
    if torch_cuda is None:
        return 'cpu', None, f'torch {facts.torch} is a CPU build'
    if not facts.cuda_available:
        return 'cpu', None, ('torch.cuda.is_available() is False; FORCE_CUDA'
                             '=1 builds CUDA ops anyway')
    if facts.nvcc is None:
        return 'cpu', None, (
            f'a GPU is visible, but no nvcc was found: set CUDA_HOME to a '
            f'CUDA {torch_cuda} toolkit for CUDA ops')
    if _major_minor(facts.nvcc)[0] != _major_minor(torch_cuda)[0]:
        return 'cpu', None, (
            f'a GPU is visible, but nvcc {facts.nvcc} does not match '
            f'torch\'s CUDA {torch_cuda}: set CUDA_HOME to a CUDA '
            f'{torch_cuda} toolkit for CUDA ops')
    reason = f'a GPU is visible and nvcc {facts.nvcc} matches torch\'s CUDA'
    if facts.nvcc != torch_cuda:
        reason += f' {torch_cuda} in its major version'
    return 'cuda', facts.nvcc, reason


def decide_mmcv(facts: Facts, plan: Plan, ranges: dict) -> Plan:
    """The mmcv part of the plan: keep an installed mmcv in the accepted
    range whose ops run (on CUDA tensors too where CUDA ops are wanted and
    a GPU is visible); otherwise install mmcv ``MMCV_VERSION`` built for
    this torch with the ops of :func:`decide_ops`."""
    ops, cuda, plan.reasons['ops'] = decide_ops(facts)
    plan.ops, plan.cuda = ops, cuda
    plan.cuda_arch = facts.cuda_arch if ops == 'cuda' else None
    plan.cache_key = cache_key(facts, ops, cuda, plan.cuda_arch)
    accepted = ranges['mmcv']
    if facts.mmcv is None:
        why = 'mmcv is not installed'
    elif facts.mmcv_lite:
        why = f'the installed mmcv-lite {facts.mmcv} has no ops'
    elif not _in_range(facts.mmcv, accepted):
        why = (f'the installed {facts.mmcv} is outside '
               f'{describe_range(accepted)}')
    elif not facts.mmcv_ops:
        why = (f'the ops of the installed {facts.mmcv} do not import or run '
               f'(no ops, or built against another torch)')
    elif ops == 'cuda' and facts.mmcv_compiled_cuda is None:
        why = f'the installed {facts.mmcv} has CPU ops only'
    elif ops == 'cuda' and facts.cuda_available and not facts.mmcv_cuda_ops:
        why = f'the ops of the installed {facts.mmcv} do not run on the GPU'
    else:
        plan.mmcv = 'keep'
        kind = 'on the GPU too' if facts.mmcv_cuda_ops else 'on CPU'
        note = ''
        if facts.cuda_available and not facts.mmcv_cuda_ops:
            note = ('; not on the GPU, but a CUDA build is not possible '
                    'either, see mmcv ops')
        plan.reasons['mmcv'] = (f'{facts.mmcv} (installed; accepted: '
                                f'{describe_range(accepted)}; its ops run '
                                f'{kind}{note})')
        return plan
    plan.mmcv = 'install'
    plan.reasons['mmcv'] = (f'{MMCV_VERSION} built for torch {facts.torch}'
                            f' ({why})')
    return plan


def decide(facts: Facts, ranges: Optional[dict] = None) -> Plan:
    """The installer's plan for an environment.

    Args:
        facts (Facts): The environment.
        ranges (dict, optional): :func:`accepted_ranges`; read from
            ``pyproject.toml`` when None.

    Returns:
        Plan: With ``mmcv='later'`` when torch is still to be installed
        (the mmcv build depends on which torch build pip brings).
    """
    ranges = accepted_ranges() if ranges is None else ranges
    plan = decide_torch(facts, ranges)
    if plan.torch == 'install':
        plan.reasons['mmcv'] = '(decided once torch is installed)'
        return plan
    return decide_mmcv(facts, plan, ranges)


# ---------------------------------------------------------------------------
# Reading the environment (run by the target interpreter).

# Run in a child process: an mmcv compiled against another torch can crash
# the interpreter on import.
_MMCV_PROBE = r'''
import json, torch
facts = {}
try:
    from mmcv.ops import get_compiling_cuda_version, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
    scores = torch.tensor([0.9, 0.8])
    nms(boxes, scores, 0.5)
    facts['mmcv_ops'] = True
    compiled = get_compiling_cuda_version()
    facts['mmcv_compiled_cuda'] = None if compiled == 'not available' \
        else compiled
    if torch.cuda.is_available():
        nms(boxes.cuda(), scores.cuda(), 0.5)
        torch.cuda.synchronize()
        facts['mmcv_cuda_ops'] = True
except Exception:
    pass
print(json.dumps(facts))
'''


def _nvcc_release(cuda_home: Optional[str]) -> Optional[str]:
    if not cuda_home:
        return None
    nvcc = osp.join(cuda_home, 'bin', 'nvcc')
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True,
                             text=True, timeout=60).stdout
    except OSError:
        return None
    match = re.search(r'release (\d+\.\d+)', out)
    return match.group(1) if match else None


def _cuda_home() -> Optional[str]:
    # torch's own lookup, which the build uses. In a child process: importing
    # cpp_extension imports setuptools, whose distutils shim fails in a
    # process that has already imported the standard library's distutils.
    out = subprocess.run(
        [sys.executable, '-c', 'from torch.utils.cpp_extension import '
         'CUDA_HOME; print(CUDA_HOME or "")'],
        capture_output=True, text=True)
    if out.returncode != 0:
        _log(f'could not read torch\'s CUDA_HOME (no CUDA ops):\n'
             f'{out.stderr[-2000:]}')
        return None
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() \
        else None


def _torch_facts(facts: Facts) -> None:
    try:
        import torch
    except Exception:  # noqa: BLE001  (absent or broken: both mean none)
        return
    from importlib.metadata import PackageNotFoundError, version
    facts.torch = torch.__version__
    try:
        facts.torch_dist = version('torch')
    except PackageNotFoundError:
        facts.torch_dist = torch.__version__
    facts.torch_cuda = torch.version.cuda
    facts.cuda_available = torch.cuda.is_available()
    if torch.version.cuda is not None:
        facts.cuda_arch = os.environ.get('TORCH_CUDA_ARCH_LIST') or None
        if facts.cuda_arch is None and facts.cuda_available:
            capabilities = {
                torch.cuda.get_device_capability(i)
                for i in range(torch.cuda.device_count())
            }
            facts.cuda_arch = ';'.join(f'{major}.{minor}'
                                       for major, minor in sorted(capabilities))
        facts.nvcc = _nvcc_release(_cuda_home())
    try:
        import torchvision
        facts.torchvision = torchvision.__version__.split('+')[0]
        torchvision.ops.nms(torch.tensor([[0., 0., 1., 1.]]),
                            torch.tensor([1.]), 0.5)
        facts.torchvision_ops = True
    except Exception:  # noqa: BLE001  (missing, or not built for this torch)
        pass


def gather_facts() -> Facts:
    """The facts of the running interpreter's environment."""
    from importlib.metadata import PackageNotFoundError, version
    facts = Facts(
        python_tag=f'cp{sys.version_info.major}{sys.version_info.minor}',
        platform=sysconfig.get_platform().replace('-', '_').replace('.', '_'),
        force_cuda=os.environ.get('FORCE_CUDA'))
    _torch_facts(facts)
    if facts.torch is None:
        return facts
    for name in ('mmcv', 'mmcv-lite'):
        try:
            facts.mmcv = version(name)
        except PackageNotFoundError:
            continue
        facts.mmcv_lite = name == 'mmcv-lite'
        break
    if facts.mmcv is None:
        return facts
    out = subprocess.run([sys.executable, '-c', _MMCV_PROBE],
                         capture_output=True, text=True)
    if out.returncode == 0:
        for name, value in json.loads(out.stdout.splitlines()[-1]).items():
            setattr(facts, name, value)
    return facts


# ---------------------------------------------------------------------------
# The wheel cache: one folder per key.


def wheel_has_ops(path: str) -> bool:
    """Whether an mmcv wheel holds the compiled ``mmcv/_ext`` (mmcv's
    setup.py silently builds a pure-Python wheel when it cannot import
    torch, so the file name proves nothing)."""
    names = zipfile.ZipFile(path).namelist()
    return any(re.fullmatch(r'mmcv/_ext[^/]*\.(so|pyd)', n) for n in names)


def find_cached_wheel(cache: str, key: str,
                      mmcv_version: str = MMCV_VERSION) -> Optional[str]:
    """The cached mmcv wheel of ``key``, if any. Wheels there without
    compiled ops are deleted (never installed).

    Args:
        cache (str): The cache root.
        key (str): :func:`cache_key` of the build wanted.
        mmcv_version (str): The mmcv version wanted.
    """
    folder = osp.join(cache, key)
    good = None
    if not osp.isdir(folder):
        return None
    for name in sorted(os.listdir(folder)):
        if not (name.startswith(f'mmcv-{mmcv_version}-')
                and name.endswith('.whl')):
            continue
        path = osp.join(folder, name)
        if wheel_has_ops(path):
            good = good or path
        else:
            _log(f'removing cached {name}: it has no compiled ops')
            os.remove(path)
    return good


def legacy_wheels(cache: str) -> List[str]:
    """mmcv wheels an older installer left directly in the cache root,
    without a record of the torch they were built against."""
    if not osp.isdir(cache):
        return []
    return sorted(
        osp.join(cache, name) for name in os.listdir(cache)
        if name.startswith('mmcv-') and name.endswith('.whl'))


def legacy_notes(cache: str, plan: Plan, facts: Facts) -> List[str]:
    """What to say about :func:`legacy_wheels` when the plan builds mmcv
    because its key has no wheel: how to adopt one built for this torch."""
    if plan.mmcv != 'install' or find_cached_wheel(cache, plan.cache_key):
        return []
    return [
        f'not using {legacy}: an older install left it without a record '
        f'of its torch. If it was built against torch {facts.torch}, file '
        f'it under {plan.cache_key} with: {sys.executable} '
        f'{osp.abspath(__file__)} adopt-cache {legacy}'
        for legacy in legacy_wheels(cache)
    ]


def store_wheel(path: str, cache: str, key: str) -> str:
    """Copy a wheel into the folder of ``key``, under its own name; a copy
    and a rename, so that an interrupted install never leaves a partial
    wheel under a name the next one would trust.

    Returns:
        str: The cached wheel's path.
    """
    folder = osp.join(cache, key)
    os.makedirs(folder, exist_ok=True)
    target = osp.join(folder, osp.basename(path))
    partial = osp.join(folder, f'.{osp.basename(path)}.part')
    shutil.copyfile(path, partial)
    os.replace(partial, target)
    return target


_ADOPT_PROBE = r'''
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import mmcv
from mmcv.ops import get_compiling_cuda_version, nms
assert mmcv.__file__.startswith(sys.argv[1]), mmcv.__file__
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
scores = torch.tensor([0.9, 0.8])
nms(boxes, scores, 0.5)
compiled = get_compiling_cuda_version()
cuda = None if compiled == 'not available' else compiled
if cuda is not None:
    nms(boxes.cuda(), scores.cuda(), 0.5)
print(json.dumps(dict(version=mmcv.__version__, cuda=cuda)))
'''


def adopt_cache(wheel: str, cache: str) -> str:
    """File an mmcv wheel that an older installer left unkeyed under this
    environment's key, once it is shown to import and run here: its ops
    import against this torch (an undefined symbol fails that) and its nms
    runs (on the GPU too for a CUDA build). The wheel is copied (an older
    installer may still use it where it is). Only adopt a wheel built
    against this very torch build: the check cannot see a difference in,
    e.g., the CUDA variant of the same torch version.

    Args:
        wheel (str): The wheel.
        cache (str): The cache root.

    Returns:
        str: Where it is cached now.

    Raises:
        PlanError: If the wheel has no ops or does not work here.
    """
    if not wheel_has_ops(wheel):
        raise PlanError(f'{wheel} has no compiled mmcv/_ext: delete it.')
    facts = gather_facts()
    if facts.torch is None:
        raise PlanError('torch does not import: run tools/install.sh first.')
    with tempfile.TemporaryDirectory() as unpacked:
        zipfile.ZipFile(wheel).extractall(unpacked)
        out = subprocess.run([sys.executable, '-c', _ADOPT_PROBE, unpacked],
                             capture_output=True, text=True)
    if out.returncode != 0:
        raise PlanError(
            f'{wheel} does not work with torch {facts.torch} here (so it '
            f'was built against another torch): delete it, and let '
            f'tools/install.sh build one.\n{out.stderr[-2000:]}')
    built = json.loads(out.stdout.splitlines()[-1])
    ops = 'cpu' if built['cuda'] is None else 'cuda'
    key = cache_key(facts, ops, built['cuda'], facts.cuda_arch)
    target = store_wheel(wheel, cache, key)
    _log(f'adopted mmcv {built["version"]} ({ops} ops) for torch '
         f'{facts.torch}: {target}')
    return target


# ---------------------------------------------------------------------------
# Command line.


def describe(plan: Plan, facts: Facts) -> List[str]:
    """The plan as the log lines ``install.sh`` prints."""
    lines = [f'plan for {sys.executable} ({facts.python_tag}, '
             f'{facts.platform})']
    for name in ('torch', 'torchvision', 'mmcv'):
        lines.append(f'  {name + ":":12} {getattr(plan, name)} '
                     f'{plan.reasons[name]}')
    if plan.mmcv != 'later':
        ops = plan.ops if plan.ops == 'cpu' else \
            f'cuda {plan.cuda} (arch {plan.cuda_arch or "torch default"})'
        lines.append(f'  mmcv ops:    {ops} ({plan.reasons["ops"]})')
        lines.append(f'  cache key:   {plan.cache_key}')
    return lines


def shell_lines(plan: Plan, facts: Facts, cache: str) -> List[str]:
    """``NAME=value`` lines for ``eval`` in install.sh."""
    wheel = None
    if plan.mmcv == 'install':
        wheel = find_cached_wheel(cache, plan.cache_key)
    values = dict(
        TORCH_ACTION=plan.torch, TORCHVISION_ACTION=plan.torchvision,
        MMCV_ACTION=plan.mmcv, MMCV_OPS=plan.ops, MMCV_CUDA=plan.cuda or '',
        MMCV_CUDA_ARCH=plan.cuda_arch or '', CACHE_KEY=plan.cache_key or '',
        CACHED_WHEEL=wheel or '', TORCH_VERSION=facts.torch or '',
        TORCH_DIST=facts.torch_dist or '',
        TORCHVISION_VERSION=facts.torchvision or '',
        MMCV_LITE='1' if facts.mmcv_lite else '', MMCV_VERSION=MMCV_VERSION)
    lines = [f'{name}={shlex.quote(str(value))}'
             for name, value in values.items()]
    lines.append('PIP_TORCH=(' + ' '.join(map(shlex.quote, plan.pip_torch))
                 + ')')
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    plan_parser = sub.add_parser('plan', help='print the plan')
    plan_parser.add_argument(
        '--shell', action='store_true',
        help='print NAME=value lines for install.sh (the plan goes to '
        'stderr)')
    sub.add_parser('facts', help='print the facts as JSON')
    adopt = sub.add_parser(
        'adopt-cache', help='file an unkeyed mmcv wheel of an older '
        'install under this environment\'s key, if it works here')
    adopt.add_argument('wheel')
    store = sub.add_parser(
        'store-wheel', help='cache a freshly built mmcv wheel under KEY '
        '(refused without compiled ops)')
    store.add_argument('wheel')
    store.add_argument('key')
    for command in (plan_parser, adopt, store):
        command.add_argument(
            '--cache',
            default=os.environ.get('ETF_PLUGIN_WHEEL_CACHE', DEFAULT_CACHE),
            help='the wheel cache (default: $ETF_PLUGIN_WHEEL_CACHE or '
            '~/.cache/etf_plugin/wheels)')
    args = parser.parse_args(argv)
    try:
        if args.command == 'adopt-cache':
            adopt_cache(args.wheel, args.cache)
            return 0
        if args.command == 'store-wheel':
            if not wheel_has_ops(args.wheel):
                raise PlanError(f'the built {osp.basename(args.wheel)} has '
                                f'no compiled mmcv/_ext (not cached)')
            store_wheel(args.wheel, args.cache, args.key)
            return 0
        facts = gather_facts()
        if args.command == 'facts':
            print(json.dumps(asdict(facts), indent=2))
            return 0
        plan = decide(facts)
    except PlanError as error:
        _log(f'error: {error}')
        return 1
    for line in describe(plan, facts):
        _log(line)
    for line in legacy_notes(args.cache, plan, facts):
        _log(line)
    if args.shell:
        print('\n'.join(shell_lines(plan, facts, args.cache)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
