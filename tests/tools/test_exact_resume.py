"""Interrupted and resumed tools/train.py runs end exactly where the
uninterrupted run ends; the faults that used to lose work or give wrong
numbers are injected into real runs of the shipped digits config.

Every run is the shipped configs/resnet32_digitslt_etf.py defaults
(EpochSeedHook, non-persistent workers, AtomicCheckpointHook) shortened to
6 epochs, deterministic on CPU, plus FaultInjectionHook (fault_hooks.py),
which acts only when its environment variable is set:

* stopped at an epoch boundary (after epoch 3's checkpoint), resumed;
* killed mid-epoch 4, resumed from the epoch-3 checkpoint;
* sent SIGTERM mid-epoch 4 (every process of the run, dataloader worker
  included, as Slurm does): PreemptionHook saves iteration 35 and exits
  with status 75, and --resume continues at the next batch;

each must end with bit-identical weights (every state_dict tensor) and the
same validation metrics as the uninterrupted run. Then: raising max_epochs
on resume, reusing the work dir for a new run, and testing a bit-flipped or
ETF-zeroed checkpoint must each stop with a clear error. (A save killed
midway is injected in-process, at every step of the save, in
tests/engine/test_atomic_checkpoint_hook.py.)
"""
import glob
import json
import os
import os.path as osp
import shutil
import signal
import sys

import pytest
import torch

from etf_plugin.engine.hooks.preemption_hook import PREEMPTED_EXIT_CODE
from helpers import (MMPRETRAIN_TOOLS, REPO_ROOT, assert_same_weights,
                     last_checkpoint, load_tool, run_tool)

pytestmark = pytest.mark.slow

HERE = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(HERE, 'fault_config.py')
SHIPPED = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')
OPTIONS = [
    'train_cfg.max_epochs=6', 'train_cfg.val_interval=3',
    'randomness.deterministic=True', 'default_hooks.logger.interval=5',
    'default_hooks.checkpoint.interval=1'  # a checkpoint to resume from
]
FAULTS = ('ETF_FAULT_EXIT_AFTER_EPOCH', 'ETF_FAULT_KILL_AT',
          'ETF_FAULT_FREEZE', 'ETF_FAULT_SIGNAL_AT', 'ETF_FAULT_PAUSE_AT',
          'ETF_FAULT_PAUSE_IN_SAVE')


def run(args, expect_rc=0, **fault):
    """Run a tool under this interpreter (after ``setsid`` when it is the
    first argument); returns its output."""
    env = {k: v for k, v in os.environ.items() if k not in FAULTS}
    env.update(
        PYTHONPATH=os.pathsep.join([HERE, REPO_ROOT,
                                    env.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1',
        **{k: str(v) for k, v in fault.items()})
    prefix = [args.pop(0)] if args[0] == 'setsid' else []
    return run_tool([*prefix, sys.executable, *args], env=env,
                    expect_rc=expect_rc)


def train(work_dir, *extra, expect_rc=0, session=False, **fault):
    """tools/train.py on the fault config; ``session``: in a session (and
    process group) of its own, for faults that signal the whole group."""
    return run([*(['setsid'] if session else []),
                osp.join(REPO_ROOT, 'tools', 'train.py'), CONFIG,
                '--work-dir', str(work_dir), *extra, '--cfg-options',
                *OPTIONS], expect_rc=expect_rc, **fault)


def val_metrics(work_dir, step):
    """The validation metrics logged at ``step`` (epoch), from the latest
    run in the work dir that logged it."""
    found = None
    for scalars in sorted(
            glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                               'scalars.json'))):
        with open(scalars) as f:
            for line in f:
                record = json.loads(line)
                if 'accuracy/top1' in record and record['step'] == step:
                    found = {
                        k: v
                        for k, v in record.items()
                        if k not in ('time', 'data_time')
                    }
    assert found is not None, f'no validation at epoch {step} in {work_dir}'
    return found


def assert_same_run(work_dir, reference):
    """Bit-identical final weights and identical epoch-6 metrics."""
    assert_same_weights(osp.join(str(work_dir), 'epoch_6.pth'),
                        osp.join(reference, 'epoch_6.pth'))
    assert val_metrics(work_dir, 6) == val_metrics(reference, 6)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('uninterrupted')
    train(work_dir)
    return str(work_dir)


def test_stopped_at_an_epoch_boundary_and_resumed(uninterrupted, tmp_path):
    train(tmp_path, expect_rc=-signal.SIGKILL, ETF_FAULT_EXIT_AFTER_EPOCH=3)
    assert last_checkpoint(tmp_path) == str(tmp_path / 'epoch_3.pth')
    assert not (tmp_path / 'epoch_4.pth').exists()
    log = train(tmp_path, '--resume')
    assert 'resumed epoch: 3' in log
    assert_same_run(tmp_path, uninterrupted)


def test_killed_mid_epoch_and_resumed(uninterrupted, tmp_path):
    train(tmp_path, expect_rc=-signal.SIGKILL, ETF_FAULT_KILL_AT='4:5')
    assert last_checkpoint(tmp_path) == str(tmp_path / 'epoch_3.pth')
    log = train(tmp_path, '--resume')
    assert 'resumed epoch: 3' in log
    assert_same_run(tmp_path, uninterrupted)


def test_preempted_mid_epoch_and_resumed(uninterrupted, tmp_path):
    log = train(tmp_path, expect_rc=PREEMPTED_EXIT_CODE, session=True,
                ETF_FAULT_SIGNAL_AT='4:5')
    assert 'PreemptionHook: SIGTERM received' in log
    assert 'DataLoader worker' not in log  # the worker ignored it
    assert last_checkpoint(tmp_path) == str(tmp_path / 'iter_35.pth')
    log = train(tmp_path, '--resume')
    assert 'resumed epoch: 3, iter: 35' in log
    assert 'continuing epoch 4 after batch 5' in log
    assert_same_run(tmp_path, uninterrupted)
    assert not (tmp_path / 'iter_35.pth').exists()  # the run got past it


def test_longer_max_epochs_on_resume_is_refused(uninterrupted, tmp_path):
    work_dir = str(tmp_path / 'copy')
    shutil.copytree(uninterrupted, work_dir)
    output = run([
        osp.join(REPO_ROOT, 'tools', 'train.py'), CONFIG, '--work-dir',
        work_dir, '--resume',
        osp.join(work_dir, 'epoch_6.pth'), '--cfg-options', *OPTIONS,
        'train_cfg.max_epochs=9'
    ], expect_rc=1)
    assert ('CosineAnnealingLR.end: 6 in the checkpoint, 9 now' in output)
    assert '--cfg-options train_cfg.max_epochs=6' in output
    assert f'load_from={osp.join(work_dir, "epoch_6.pth")}' in output
    assert not osp.exists(osp.join(work_dir, 'epoch_7.pth'))


def test_new_run_into_a_used_work_dir_is_refused(uninterrupted, monkeypatch):
    """tools/train.py refuses before it writes anything (in-process: it
    stops before building the runner). MMPretrain's own tools/train.py is
    stopped by AtomicCheckpointHook.before_run, tested with a runner in
    tests/engine/test_atomic_checkpoint_hook.py."""
    before = {
        n: os.path.getmtime(osp.join(uninterrupted, n))
        for n in os.listdir(uninterrupted)
    }
    monkeypatch.syspath_prepend(osp.join(REPO_ROOT, 'tools'))
    tool = load_tool('tools/train.py')
    monkeypatch.setattr(sys, 'argv', [
        'train.py', SHIPPED, '--work-dir', uninterrupted, '--cfg-options',
        *OPTIONS
    ])
    with pytest.raises(FileExistsError) as info:
        tool.main()
    message = str(info.value)
    assert '--resume' in message and '--work-dir' in message
    assert 'epoch_6.pth' in message
    assert {
        n: os.path.getmtime(osp.join(uninterrupted, n))
        for n in os.listdir(uninterrupted)
    } == before  # nothing written, nothing overwritten
    # --resume is what it asks for, and passes the check
    monkeypatch.setattr(sys, 'argv', sys.argv[:4] + ['--resume'] +
                        sys.argv[4:])
    args = tool.parse_args()
    from mmengine.config import Config
    cfg = tool.merge_args(Config.fromfile(SHIPPED), args)
    tool.check_work_dir_is_new(cfg.work_dir, resuming=cfg.resume)


def test_bit_flipped_checkpoint_is_refused_by_mmpretrains_test_py(
        uninterrupted, tmp_path):
    """MMPretrain's own tools/test.py (the plugin's loader is registered
    by the config's custom_imports); ours loads through the same loader
    (test_zeroed_etf_is_refused_by_test_py), and so do --resume and
    load_from (tests/engine/test_atomic_checkpoint_hook.py)."""
    import zipfile
    path = str(tmp_path / 'epoch_6.pth')
    shutil.copy(osp.join(uninterrupted, 'epoch_6.pth'), path)
    shutil.copy(osp.join(uninterrupted, 'epoch_6.pth.sha256'),
                path + '.sha256')
    with zipfile.ZipFile(path) as archive:
        offset = archive.infolist()[-10].header_offset + 200
    with open(path, 'r+b') as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x10]))
    output = run([
        osp.join(MMPRETRAIN_TOOLS, 'test.py'), SHIPPED, path, '--work-dir',
        str(tmp_path)
    ], expect_rc=1)
    assert 'CorruptCheckpointError' in output
    assert 'does not match the SHA-256 recorded in' in output
    assert 'accuracy/top1' not in output


def test_zeroed_etf_is_refused_by_test_py(uninterrupted, tmp_path):
    checkpoint = torch.load(osp.join(uninterrupted, 'epoch_6.pth'))
    checkpoint['state_dict']['head.classifier.etf_vectors'].zero_()
    path = str(tmp_path / 'zeroed.pth')
    torch.save(checkpoint, path)
    output = run([
        osp.join(REPO_ROOT, 'tools', 'test.py'), SHIPPED, path, '--work-dir',
        str(tmp_path)
    ], expect_rc=1)
    assert "The checkpoint's ETF head.classifier.etf_vectors is not a " \
        'simplex ETF' in output
    assert 'accuracy/top1' not in output
