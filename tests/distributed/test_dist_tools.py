"""The distributed launchers, run for real: 2 CPU processes with gloo.

tools/dist_train.sh trains the digits-LT demo for 2 epochs; the checkpoint is
then evaluated by tools/dist_test.sh (2 processes), by tools/slurm_test.sh
under a stand-in srun, and by tools/test.py in one process: all must give the
same accuracy, long-tail accuracy and neural-collapse metrics. Broken runs (a
crashed rank, an ETF that differs on one of two "nodes", SyncBN without a
GPU) must end with a non-zero exit status well within a timeout instead of
hanging.

The config is tests/distributed/dist_check_config.py: the demo plus test-only probe
hooks (tests/distributed/dist_check_hooks.py) that record what each rank saw.
"""
import glob
import json
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch

from helpers import REPO_ROOT
from dist_check_hooks import FAIL_RANK, PERTURB_RANK
from ports import free_port

pytestmark = pytest.mark.slow

HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(HERE, 'dist_check_config.py')
TOOLS = osp.join(REPO_ROOT, 'tools')
EPOCHS = ['train_cfg.max_epochs=2', 'train_cfg.val_interval=2']
# A broken job must end by itself long before this (seconds).
TIMEOUT = 240


def tool_env(**extra) -> dict:
    """The environment of a launcher: this checkout and the probes on
    PYTHONPATH, this interpreter, a free port, one thread per process (two
    processes share 2 cores; torchrun sets the same)."""
    env = {
        key: value
        for key, value in os.environ.items() if key not in (
            'MASTER_ADDR', 'MASTER_PORT', 'RANK', 'LOCAL_RANK', 'WORLD_SIZE',
            FAIL_RANK, PERTURB_RANK)
    }
    env.update(
        PYTHONPATH=os.pathsep.join(
            [HERE, REPO_ROOT, env.get('PYTHONPATH', '')]),
        PYTHON=sys.executable,
        PORT=str(free_port()),
        OMP_NUM_THREADS='1')
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start(args, env=None):
    """Start a tool in its own process group, its output in a temporary
    file."""
    output = tempfile.TemporaryFile(mode='w+')
    process = subprocess.Popen(
        args,
        env=env or tool_env(),
        cwd=REPO_ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True)
    return process, output


def wait(started):
    """Wait for tools started together; returns [(exit status, output)].
    Past TIMEOUT the jobs are stopped and the test fails: a job must never
    hang."""
    deadline = time.monotonic() + TIMEOUT
    results = []
    try:
        for process, output in started:
            status = process.wait(timeout=max(deadline - time.monotonic(), 1))
            output.seek(0)
            results.append((status, output.read()))
    except subprocess.TimeoutExpired:
        pytest.fail(f'the job did not end within {TIMEOUT} s')
    finally:
        for process, output in started:
            if process.poll() is None:
                # SIGTERM first: torchrun then stops its workers, which run
                # in sessions of their own.
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            output.close()
    return results


def launch(args, env=None, expect_ok=True):
    """Run a tool to completion; returns (exit status, output, seconds)."""
    begin = time.monotonic()
    status, output = wait([start(args, env)])[0]
    if expect_ok:
        assert status == 0, output[-5000:]
    return status, output, time.monotonic() - begin


def out_args(work_dir):
    return [
        '--work-dir', work_dir, '--out',
        osp.join(work_dir, 'metrics.pkl'), '--out-item', 'metrics'
    ]


def read_results(work_dir):
    """The metrics dumped by --out, and the one NC record of the test."""
    with open(osp.join(work_dir, 'metrics.pkl'), 'rb') as f:
        metrics = pickle.load(f)
    records = read_json_lines(osp.join(work_dir, 'nc_metrics.json'))
    assert len(records) == 1  # written by rank 0 only
    return metrics, records[0]


def read_json_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def read_rank_states(work_dir, stage):
    states = []
    for rank in range(2):
        with open(osp.join(work_dir, 'rank_state',
                           f'{stage}_rank{rank}.json')) as f:
            states.append(json.load(f))
    return states


def assert_same_nc(record, expected):
    """NC records agree: floats up to the order of float64 sums (measured
    differences are ~1e-15 relative; 1e-6 leaves room for other BLAS
    builds), the rest exactly."""
    assert record.keys() == expected.keys()
    for key, value in expected.items():
        if key in ('epoch', 'iter'):
            continue
        if isinstance(value, float):
            assert record[key] == pytest.approx(
                value, rel=1e-6, abs=1e-9, nan_ok=True), key
        else:
            assert record[key] == value, key


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Work dir of a 2-process dist_train.sh run (2 epochs, --auto-scale-lr)
    and its output."""
    work_dir = str(tmp_path_factory.mktemp('dist_train'))
    _, output, seconds = launch([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), CONFIG, '2', '--work-dir',
        work_dir, '--auto-scale-lr', '--cfg-options', *EPOCHS
    ])
    print(f'dist_train.sh, 2 processes: {seconds:.1f} s')
    return work_dir, output


@pytest.fixture(scope='module')
def single_process(trained, tmp_path_factory):
    """tools/test.py in one process on the epoch-2 checkpoint."""
    work_dir = str(tmp_path_factory.mktemp('single_test'))
    launch([
        sys.executable,
        osp.join(TOOLS, 'test.py'), CONFIG,
        osp.join(trained[0], 'epoch_2.pth'), *out_args(work_dir)
    ])
    return read_results(work_dir)


def test_dist_train_ranks_agree(trained):
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS

    from etf_plugin.functional import simplex_etf

    work_dir, output = trained
    rank0, rank1 = read_rank_states(work_dir, 'train')
    # LongTailDataset: the same subset on both ranks, and the one a single
    # process builds from the same config
    dataset = DATASETS.build(
        Config.fromfile(CONFIG).train_dataloader.dataset)
    subset = [dataset._get_ori_dataset_idx(i) for i in range(len(dataset))]
    assert rank0['subset'] == rank1['subset'] == subset
    assert rank0['subset_labels'] == rank1['subset_labels']
    assert len(subset) == 304
    # DDP sharding: disjoint halves that cover the training set
    assert len(rank0['shard']) == len(rank1['shard']) == 152
    assert sorted(rank0['shard'] + rank1['shard']) == list(range(304))
    # auto_scale_lr: 0.05 * (2 processes x 32) / base_batch_size 32
    assert rank0['lr'] == rank1['lr'] == pytest.approx(0.1)
    assert 'Scaling the original LR by 2.0' in output
    # the ETF, checked by RankConsistencyHook and by us
    assert 'RankConsistencyHook: head.classifier.etf_vectors (10, 64) bit-identical ' \
        'on all 2 ranks.' in output
    assert rank0['etf'] == rank1['etf'] == simplex_etf(10, 64).tolist()
    assert rank0['norm_layers'] == ['BatchNorm1d', 'BatchNorm2d']
    # files are written once, by rank 0
    assert len(glob.glob(osp.join(work_dir, '*', '*.log'))) == 1
    records = read_json_lines(osp.join(work_dir, 'nc_metrics.json'))
    assert [r['epoch'] for r in records] == [2]
    checkpoint = torch.load(osp.join(work_dir, 'epoch_2.pth'))
    assert checkpoint['meta']['epoch'] == 2
    assert torch.equal(checkpoint['state_dict']['head.classifier.etf_vectors'],
                       simplex_etf(10, 64))


def test_dist_test_equals_single_process(trained, single_process,
                                         tmp_path):
    work_dir = str(tmp_path)
    _, output, seconds = launch([
        'bash',
        osp.join(TOOLS, 'dist_test.sh'), CONFIG,
        osp.join(trained[0], 'epoch_2.pth'), '2', *out_args(work_dir)
    ])
    print(f'dist_test.sh, 2 processes: {seconds:.1f} s')
    metrics, nc = read_results(work_dir)
    single_metrics, single_nc = single_process
    # Accuracy, LongTailAccuracy (per class too) on 499 images, the
    # sampler's padding removed: exact
    assert metrics == single_metrics
    assert {'accuracy/top1', 'lt/top1', 'lt/macro', 'lt/many', 'lt/medium',
            'lt/few', 'lt/per_class'} <= metrics.keys()
    assert nc['num_samples'] == 303
    assert_same_nc(nc, single_nc)
    assert 'bit-identical on all 2 ranks' in output

    # During training (RankConsistencyHook) the epoch-2 validation and the
    # NC measurement saw exactly the model that was saved.
    train_dir = trained[0]
    train_nc = read_json_lines(osp.join(train_dir, 'nc_metrics.json'))[0]
    assert_same_nc(train_nc, single_nc)
    scalars = read_json_lines(
        glob.glob(osp.join(train_dir, '*', 'vis_data', 'scalars.json'))[0])
    val = [r for r in scalars if 'accuracy/top1' in r]
    assert val[-1]['step'] == 2
    assert val[-1]['accuracy/top1'] == single_metrics['accuracy/top1']


def test_two_nodes_stop_on_a_mismatched_etf(trained, tmp_path):
    """NNODES=2 x 1 process on one machine, as two hosts run it, with the
    ETF one ulp off on node 1 (as from a stale checkpoint copy there): both
    nodes get through the rendezvous and the checkpoint loading, then
    RankConsistencyHook stops both with the same error, and both exit
    non-zero."""
    port = free_port()
    nodes = wait([
        start([
            'bash',
            osp.join(TOOLS, 'dist_test.sh'), CONFIG,
            osp.join(trained[0], 'epoch_2.pth'), '1', '--work-dir',
            str(tmp_path)
        ],
              env=tool_env(
                  NNODES=2,
                  NODE_RANK=node_rank,
                  MASTER_ADDR='127.0.0.1',
                  PORT=port,
                  **{PERTURB_RANK: 1})) for node_rank in range(2)
    ])
    for status, output in nodes:
        assert status != 0
        assert 'ValueError: head.classifier.etf_vectors is not bit-identical on all ' \
            'distributed ranks; largest absolute difference from rank 0 on ' \
            'rank 1:' in output, output[-5000:]
    outputs = [output for _, output in nodes]
    assert 'Load checkpoint from' in outputs[0]  # rank 0 logs


def test_slurm_scripts(trained, single_process, tmp_path):
    """tools/slurm_test.sh under a stand-in srun that starts the tasks with
    Slurm's environment variables. (tools/slurm_train.sh and its batch
    script: tests/tools/test_slurm_train.py.)"""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake_srun = bin_dir / 'srun'
    fake_srun.write_text(FAKE_SRUN.format(python=sys.executable))
    fake_scontrol = bin_dir / 'scontrol'
    fake_scontrol.write_text('#!/bin/sh\necho 127.0.0.1\n')
    for script in (fake_srun, fake_scontrol):
        script.chmod(0o755)
    srun_log = tmp_path / 'srun_args.json'
    env = tool_env(
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        GPUS=2,
        GPUS_PER_NODE=2,
        FAKE_SRUN_LOG=srun_log)
    env['MASTER_PORT'] = env.pop('PORT')  # slurm reads MASTER_PORT
    work_dir = str(tmp_path / 'work')
    launch([
        'bash',
        osp.join(TOOLS, 'slurm_test.sh'), 'partition', 'job', CONFIG,
        osp.join(trained[0], 'epoch_2.pth'), *out_args(work_dir)
    ], env=env)
    args = json.loads(srun_log.read_text())
    assert args[:2] == ['-p', 'partition']
    assert {'--job-name=job', '--ntasks=2', '--ntasks-per-node=2',
            '--gres=gpu:2', '--kill-on-bad-exit=1'} <= set(args)
    assert args[args.index('-u') + 1:] == [
        osp.join(TOOLS, 'test.py'), CONFIG,
        osp.join(trained[0], 'epoch_2.pth'), '--launcher=slurm',
        *out_args(work_dir)
    ]
    metrics, nc = read_results(work_dir)
    assert metrics == single_process[0]
    assert_same_nc(nc, single_process[1])


# A stand-in for srun: records its arguments, then runs --ntasks copies of
# the command with Slurm's variables and, like --kill-on-bad-exit=1, stops
# the others when one fails.
FAKE_SRUN = '''#!{python}
import json, os, subprocess, sys, time
args = sys.argv[1:]
with open(os.environ['FAKE_SRUN_LOG'], 'w') as f:
    json.dump(args, f)
if os.environ.get('FAKE_SRUN_DRY_RUN'):
    sys.exit(0)
i = 0
while args[i].startswith('-'):
    i += 2 if args[i] == '-p' else 1
ntasks = int([a for a in args if a.startswith('--ntasks=')][0][9:])
tasks = [
    subprocess.Popen(args[i:], env=dict(
        os.environ, SLURM_PROCID=str(r), SLURM_LOCALID=str(r),
        SLURM_NTASKS=str(ntasks), SLURM_NODELIST='node-[0]'))
    for r in range(ntasks)
]
while True:
    codes = [t.poll() for t in tasks]
    if any(c not in (None, 0) for c in codes) or None not in codes:
        break
    time.sleep(0.2)
for t in tasks:
    if t.poll() is None:
        t.kill()
sys.exit(max(abs(t.wait()) for t in tasks))
'''


def test_crashed_rank_ends_the_job(tmp_path):
    # wait() fails the test if the job outlives TIMEOUT
    status, output, seconds = launch([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), CONFIG, '2', '--work-dir',
        str(tmp_path), '--cfg-options', *EPOCHS
    ],
                                     env=tool_env(**{FAIL_RANK: 1}),
                                     expect_ok=False)
    print(f'crashed run ended after {seconds:.1f} s')
    assert status != 0
    assert 'RuntimeError: injected failure on rank 1' in output
    assert 'ChildFailedError' in output  # torchrun's report, then exit 1


def test_sync_bn_converts_our_models():
    """cfg.sync_bn='torch' is the route to SyncBN for every config here:
    CifarResNet builds nn.BatchNorm2d directly (no norm_cfg to edit), and
    the function Runner.wrap_model calls for it converts those layers and
    ETFHead's BatchNorm1d."""
    from mmengine.config import Config
    from mmengine.model import convert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    for name in ('resnet32_digitslt_etf.py', 'resnet32_cifar100lt_ce.py',
                 'resnet50_imagenetlt_etf.py'):
        cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', name))
        init_default_scope('mmpretrain')
        model = convert_sync_batchnorm(MODELS.build(cfg.model), 'torch')
        norms = {
            type(m).__name__
            for m in model.modules() if 'Norm' in type(m).__name__
        }
        assert norms == {'SyncBatchNorm'}, name


@pytest.mark.skipif(
    torch.cuda.is_available(),
    reason='checks the failure without GPUs; with GPUs SyncBN trains')
def test_sync_bn_without_gpus_fails_clearly(tmp_path):
    """PyTorch's SyncBatchNorm and DDP refuse CPU modules: a distributed
    tools/train.py must stop at once with a message naming the fix. (It
    stops before the process group, so one process shows it.)"""
    status, output, _ = launch([
        sys.executable,
        osp.join(TOOLS, 'train.py'), CONFIG, '--launcher', 'pytorch',
        '--work-dir',
        str(tmp_path), '--cfg-options', 'sync_bn=torch'
    ],
                               expect_ok=False)
    assert status != 0
    assert "ValueError: sync_bn='torch' needs GPUs" in output
    assert '--cfg-options sync_bn=None' in output


def test_scripts_print_usage():
    for script, args in (('dist_train.sh', ['only_config']),
                         ('dist_test.sh', ['config', 'checkpoint']),
                         ('slurm_train.sh', ['p', 'j', 'config']),
                         ('slurm_test.sh', ['p', 'j', 'config'])):
        result = subprocess.run(['bash', osp.join(TOOLS, script), *args],
                                capture_output=True,
                                text=True,
                                timeout=30)
        assert result.returncode == 2
        assert 'usage:' in result.stderr


def test_imagenet_lt_lr_mapping():
    """--auto-scale-lr on the ImageNet-LT config: lr 0.1 is for 8 GPUs x 128
    images (base_batch_size 1024) and scales linearly, through mmengine's own
    Runner.scale_lr."""
    from types import SimpleNamespace

    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'resnet50_imagenetlt_etf.py'))
    auto_scale_lr = dict(cfg.auto_scale_lr, enable=True)
    expected = {8: 0.1, 4: 0.05, 16: 0.2, 1: 0.0125}
    for gpus, lr in expected.items():
        optim_wrapper = build_optim_wrapper(
            torch.nn.Linear(1, 1), cfg.optim_wrapper)
        runner = SimpleNamespace(
            world_size=gpus,
            _train_dataloader=cfg.train_dataloader,
            param_schedulers=None,
            logger=MMLogger.get_current_instance())
        Runner.scale_lr(runner, optim_wrapper, auto_scale_lr)
        assert optim_wrapper.get_lr()['lr'] == [pytest.approx(lr)], gpus
    assert cfg.train_dataloader.batch_size * 8 == \
        cfg.auto_scale_lr.base_batch_size
    assert cfg.optim_wrapper.optimizer.lr == 0.1
