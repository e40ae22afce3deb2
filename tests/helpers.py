"""Helpers the tests import (``from helpers import ...``): paths, tool
runners and small builders. Fixtures and pytest hooks stay in conftest.py."""
import importlib.util
import os
import re
import socket
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tiny Faster R-CNN on synthetic long-tailed shapes that tests/det runs
# through MMDetection's own tools.
SHAPES_CONFIG = os.path.join(
    REPO_ROOT, 'configs', 'mmdet',
    'faster-rcnn_r18-tiny_fpn_etf-objectness-dr_synthetic-shapes-lt.py')


def mim_tools(package):
    """The tools an OpenMMLab package ships in ``<package>/.mim/tools``
    (found without importing the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise ModuleNotFoundError(f'No module named {package!r}',
                                  name=package)
    return os.path.join(os.path.dirname(spec.origin), '.mim', 'tools')


MMPRETRAIN_TOOLS = mim_tools('mmpretrain')


def load_tool(path):
    """Import a script under tools/ (they are not a package) as a module.

    Args:
        path (str): The script's path relative to the repository root.
    """
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_samples(labels, soft=None):
    """One ``DataSample`` per label (``int(label)``), with ``soft[i]`` as
    its ``gt_score`` when given."""
    from mmpretrain.structures import DataSample
    samples = []
    for i, label in enumerate(labels):
        sample = DataSample().set_gt_label(int(label))
        if soft is not None:
            sample.set_gt_score(soft[i])
        samples.append(sample)
    return samples


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it), so that
    parallel test runs do not collide on torchrun's default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(args, cwd=REPO_ROOT, env=None, timeout=600, expect_rc=0):
    """Run ``args`` (the whole command line) to the end, check its exit
    status and return its stdout + stderr.

    Args:
        args (list): The command and its arguments.
        cwd (str): Its working directory. Defaults to the repository root.
        env (dict, optional): Its whole environment. Defaults to this
            process's with ``OMP_NUM_THREADS=1``.
        timeout (float): Seconds before it is killed (and the test fails).
        expect_rc (int): The exit status it must end with.
    """
    if env is None:
        env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(args, capture_output=True, text=True,
                            timeout=timeout, cwd=str(cwd), env=env)
    output = result.stdout + result.stderr
    assert result.returncode == expect_rc, output[-4000:]
    return output


def final_metrics(log, phase):
    """The ``accuracy/*`` and ``lt/*`` metrics of the last ``Epoch(val)``
    or ``Epoch(test)`` line of a training or test log.

    Args:
        log (str): The log text.
        phase (str): ``'val'`` or ``'test'``.
    """
    lines = [line for line in log.splitlines() if f'Epoch({phase})' in line]
    assert lines, log[-3000:]
    return {
        key: float(value)
        for key, value in re.findall(r'((?:accuracy|lt)/\w+): ([\d.]+)',
                                     lines[-1])
    }


def init_gloo(rank, world_size, port):
    """Join a gloo process group of ``world_size`` local processes (in a
    worker that ``torch.multiprocessing.spawn`` started)."""
    import torch.distributed as torch_dist
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world_size)


def default_sampler_shard(items, rank, world_size):
    """The items rank ``rank`` sees under MMEngine's ``DefaultSampler``
    (``shuffle=False, round_up=True``): padded by repeating the start to a
    multiple of ``world_size``, then interleaved."""
    total = -(-len(items) // world_size) * world_size
    return (list(items) * 2)[:total][rank:total:world_size]


def assert_same_weights(path, reference):
    """Checkpoint ``path`` holds the same state_dict keys as ``reference``
    and every tensor is bit-identical (the exact-resume tests)."""
    import torch
    got = torch.load(path)['state_dict']
    want = torch.load(reference)['state_dict']
    assert got.keys() == want.keys()
    differ = [k for k in want if not torch.equal(got[k], want[k])]
    assert not differ, f'{len(differ)} of {len(want)} tensors differ: ' \
        f'{differ[:5]}'


def last_checkpoint(work_dir):
    """What ``last_checkpoint`` in ``work_dir`` names."""
    with open(os.path.join(str(work_dir), 'last_checkpoint')) as f:
        return f.read()
