"""AtomicCheckpointHook, the verifying checkpoint loader
(etf_plugin.engine.checkpoint_io) and RunGuardHook, with faults injected
in-process: a save killed at each step, flipped bytes, truncated and empty
files, a reused work dir, a resume with a changed schedule. The same faults
in real training runs are in tests/tools/test_exact_resume.py."""
import os
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.hooks import checkpoint_hook as mmengine_checkpoint_hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.runner.checkpoint import save_checkpoint as mmengine_save

from etf_plugin.engine import checkpoint_io
from etf_plugin.engine.checkpoint_io import (CorruptCheckpointError,
                                             load_from_verified_local,
                                             sidecar_path)
from etf_plugin.engine.hooks import AtomicCheckpointHook, RunGuardHook
from etf_plugin.utils import io as etf_io


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs in the hook."""


class _Loop(BaseLoop):

    def run(self):
        pass


class FakeRunner:
    """What CheckpointHook uses of a Runner; its checkpoints hold one
    tensor whose values are the epoch."""

    def __init__(self, work_dir, resume=False):
        name = uuid.uuid4().hex
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(name)
        self.logger = MMLogger.get_instance(name)
        self.epoch = self.iter = 0
        self.cfg = Config(dict(resume=resume, load_from=None))
        self._train_loop = _Loop(self, [])
        self.param_schedulers = None

    def save_checkpoint(self, out_dir, filename, file_client_args=None,
                        save_optimizer=True, save_param_scheduler=True,
                        meta=None, by_epoch=True, backend_args=None):
        checkpoint = dict(
            meta=meta,
            state_dict=dict(w=torch.full((4096, ), float(meta['epoch']))))
        mmengine_save(checkpoint, osp.join(out_dir, filename),
                      backend_args=backend_args)


def start(work_dir, **hook_args):
    runner = FakeRunner(work_dir)
    hook = AtomicCheckpointHook(interval=1, **hook_args)
    hook.before_run(runner)
    hook.before_train(runner)
    return runner, hook


def save_epoch(runner, hook, epoch):
    runner.epoch, runner.iter = epoch - 1, 10 * epoch
    hook._save_checkpoint(runner)


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read()


def epoch_of(path):
    return int(load_from_verified_local(path)['state_dict']['w'][0])


def files(work_dir):
    return sorted(n for n in os.listdir(work_dir))


# Each step of a save at which the process can die, as (function to break,
# which call of it): checkpoint_io's writer and rename, and MMEngine's own
# in-place write of last_checkpoint.
CRASH_POINTS = {
    'checkpoint half written': ('write_file', '.pth.tmp-'),
    'before the rename': ('replace', 'epoch_3.pth'),
    'sidecar written, checkpoint not': ('write_file', '.pth.tmp-'),
    'last_checkpoint emptied by MMEngine': ('open', 'last_checkpoint'),
    'last_checkpoint half written': ('write_file', 'last_checkpoint'),
}


@pytest.mark.parametrize('point', list(CRASH_POINTS))
@pytest.mark.parametrize('keep', [1, 3])
def test_killed_save_keeps_a_loadable_last_checkpoint(tmp_path, monkeypatch,
                                                      point, keep):
    runner, hook = start(tmp_path, max_keep_ckpts=keep)
    for epoch in (1, 2):
        save_epoch(runner, hook, epoch)
    assert last_checkpoint(tmp_path) == str(tmp_path / 'epoch_2.pth')

    name, target = CRASH_POINTS[point]
    real_write, real_replace = etf_io.write_file, os.replace

    def write_file(path, data):
        if target in path and not path.endswith('.sha256.tmp-%d' %
                                                os.getpid()):
            with open(path, 'wb') as f:
                f.write(data[:len(data) // 2])
            raise Killed
        real_write(path, data)

    def replace(src, dst):
        if dst.endswith(target):
            raise Killed
        real_replace(src, dst)

    def open_(path, mode='r', *args, **kwargs):
        if path.endswith(target) and 'w' in mode:
            open(path, 'w').close()  # truncated, then killed
            raise Killed
        return open(path, mode, *args, **kwargs)

    if name == 'open':
        monkeypatch.setattr(mmengine_checkpoint_hook, 'open', open_,
                            raising=False)
    elif name == 'write_file':
        monkeypatch.setattr(etf_io, 'write_file', write_file)
        if target == '.pth.tmp-':  # MMEngine's in-place writer, likewise
            def put(self, obj, path):
                with open(path, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise Killed

            monkeypatch.setattr(LocalBackend, 'put', put)
    else:
        monkeypatch.setattr(checkpoint_io.os, 'replace', replace)
    with pytest.raises(Killed):
        save_epoch(runner, hook, 3)
    monkeypatch.undo()

    # the previous checkpoint is still there even with max_keep_ckpts=1,
    # and every checkpoint under its final name verifies
    assert epoch_of(str(tmp_path / 'epoch_2.pth')) == 2
    for name_ in files(tmp_path):
        if name_.endswith('.pth'):
            load_from_verified_local(str(tmp_path / name_))

    # The resumed run (a new hook) cleans up: before it loads anything,
    # last_checkpoint names a complete, verified checkpoint; then it saves.
    resumed = FakeRunner(tmp_path, resume=True)
    resumed.message_hub.update_info('keep_ckpt_ids', [1, 2][-keep:])
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=keep)
    hook.before_run(resumed)
    last = last_checkpoint(tmp_path)
    assert last in (str(tmp_path / 'epoch_2.pth'),
                    str(tmp_path / 'epoch_3.pth'))
    assert epoch_of(last) == int(last[-5])
    hook.before_train(resumed)
    assert not [n for n in files(tmp_path) if '.tmp-' in n]
    save_epoch(resumed, hook, 3)
    assert epoch_of(last_checkpoint(tmp_path)) == 3
    expected = [f'epoch_{e}.pth' for e in (1, 2, 3)][-keep:]
    assert [n for n in files(tmp_path) if n.endswith('.pth')] == expected
    assert [n for n in files(tmp_path) if n.endswith('.sha256')] == [
        n + '.sha256' for n in expected
    ]


def test_leftover_temporary_file_is_removed(tmp_path):
    runner, hook = start(tmp_path)
    save_epoch(runner, hook, 1)
    (tmp_path / '.epoch_2.pth.tmp-99999').write_bytes(b'half')
    resumed = FakeRunner(tmp_path, resume=True)
    AtomicCheckpointHook(interval=1).before_run(resumed)
    assert files(tmp_path) == ['epoch_1.pth', 'epoch_1.pth.sha256',
                               'last_checkpoint']


def test_sidecar_is_sha256sum_format(tmp_path):
    import hashlib
    runner, hook = start(tmp_path)
    save_epoch(runner, hook, 1)
    data = (tmp_path / 'epoch_1.pth').read_bytes()
    assert (tmp_path / 'epoch_1.pth.sha256').read_text() == \
        f'{hashlib.sha256(data).hexdigest()}  epoch_1.pth\n'


def test_overwriting_a_checkpoint_keeps_it_verifiable(tmp_path, monkeypatch):
    """The same name saved twice (CheckpointHook re-saves an epoch after a
    new best score): killed between the steps, the file under that name
    still matches its sidecar."""
    path = str(tmp_path / 'epoch_1.pth')
    checkpoint_io.save_with_checksum(path, b'PK\x03\x04old')
    real_replace = os.replace

    def replace(src, dst):
        if dst == path:
            raise Killed
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint_io.os, 'replace', replace)
    with pytest.raises(Killed):
        checkpoint_io.save_with_checksum(path, b'PK\x03\x04new')
    monkeypatch.undo()
    assert len(checkpoint_io.read_sidecar(path)) == 2  # old and new
    assert checkpoint_io.sha256_of_file(path) in checkpoint_io.read_sidecar(
        path)
    checkpoint_io.save_with_checksum(path, b'PK\x03\x04new')
    assert len(checkpoint_io.read_sidecar(path)) == 1


@pytest.mark.parametrize('killed', [False, True])
def test_best_checkpoint_is_replaced_after_the_new_one_is_saved(
        tmp_path, monkeypatch, killed):
    runner, hook = start(tmp_path, max_keep_ckpts=1, save_best='acc')
    save_epoch(runner, hook, 1)
    runner.epoch = 1
    hook.after_val_epoch(runner, dict(acc=0.5))
    first_best = hook.best_ckpt_path
    assert osp.basename(first_best) == 'best_acc_epoch_1.pth'
    save_epoch(runner, hook, 2)
    runner.epoch = 2
    if not killed:
        hook.after_val_epoch(runner, dict(acc=0.7))
        assert not osp.exists(first_best)
        assert epoch_of(hook.best_ckpt_path) == 2
        return

    real_write = etf_io.write_file

    def write_file(path, data):
        if 'best_acc_epoch_2' in path:
            raise Killed
        real_write(path, data)

    monkeypatch.setattr(etf_io, 'write_file', write_file)
    with pytest.raises(Killed):
        hook.after_val_epoch(runner, dict(acc=0.7))
    assert epoch_of(first_best) == 1  # not deleted before the new one


@pytest.fixture
def checkpoint(tmp_path):
    runner, hook = start(tmp_path)
    save_epoch(runner, hook, 1)
    return str(tmp_path / 'epoch_1.pth')


def flip_a_tensor_byte(path, offset=103):
    """Flip one bit inside the tensor record (the top byte of element 25),
    as a bad disk or copy would."""
    import struct
    import zipfile
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist()
                    if i.filename.endswith('data/0'))
    with open(path, 'r+b') as f:
        f.seek(info.header_offset)
        header = f.read(30)
        name_length, extra_length = struct.unpack('<HH', header[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length + offset)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize('sidecar', [True, False])
def test_flipped_byte_is_refused(checkpoint, sidecar):
    flip_a_tensor_byte(checkpoint)
    if not sidecar:
        os.remove(sidecar_path(checkpoint))
    # torch.load alone takes it: the value is silently wrong
    value = torch.load(checkpoint)['state_dict']['w'][25].item()
    assert value != 1.0 and abs(value) > 1e18  # was 1.0
    match = 'does not match the SHA-256' if sidecar else 'CRC-32'
    with pytest.raises(CorruptCheckpointError, match=match):
        load_from_verified_local(checkpoint)


@pytest.mark.parametrize('sidecar', [True, False])
def test_truncated_file_is_refused(checkpoint, sidecar):
    data = open(checkpoint, 'rb').read()
    with open(checkpoint, 'wb') as f:
        f.write(data[:len(data) // 2])
    if not sidecar:
        os.remove(sidecar_path(checkpoint))
    match = 'corrupted or truncated' if sidecar else 'truncated or damaged'
    with pytest.raises(CorruptCheckpointError, match=match):
        load_from_verified_local(checkpoint)


def test_empty_file_is_refused(tmp_path, checkpoint):
    empty = tmp_path / 'epoch_2.pth'
    empty.write_bytes(b'')
    with pytest.raises(CorruptCheckpointError) as info:
        load_from_verified_local(str(empty))
    assert 'is empty (0 bytes)' in str(info.value)
    assert checkpoint in str(info.value)  # names the checkpoint to use


def test_legacy_format_truncated_is_refused(tmp_path):
    path = tmp_path / 'legacy.pth'
    torch.save({'w': torch.zeros(1000)}, path,
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match='truncated'):
        load_from_verified_local(str(path))


def test_every_mmengine_load_path_is_verified(checkpoint):
    """Runner.load_checkpoint, --resume, load_from, init_cfg=Pretrained,
    tools/test.py (ours and MMPretrain's) all go through
    CheckpointLoader, which now verifies."""
    from mmengine.runner import load_checkpoint
    flip_a_tensor_byte(checkpoint)
    with pytest.raises(CorruptCheckpointError):
        _load_checkpoint(checkpoint)
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint(torch.nn.Linear(2, 2), checkpoint)


def test_missing_file_names_the_others(tmp_path, checkpoint):
    with pytest.raises(FileNotFoundError, match='epoch_1.pth'):
        load_from_verified_local(str(tmp_path / 'epoch_9.pth'))


def test_new_run_into_a_used_work_dir_is_refused(tmp_path):
    runner, hook = start(tmp_path)
    save_epoch(runner, hook, 1)
    again = FakeRunner(tmp_path)
    with pytest.raises(FileExistsError) as info:
        RunGuardHook().before_run(again)
    message = str(info.value)
    assert '--resume' in message and '--work-dir' in message
    assert 'epoch_1.pth' in message and '.sha256' not in message
    # resuming it is the point; testing in it (no train loop) is fine
    RunGuardHook().before_run(FakeRunner(tmp_path, True))
    testing = FakeRunner(tmp_path)
    testing._train_loop = None
    RunGuardHook().before_run(testing)


def test_resume_with_another_schedule_is_refused(tmp_path):
    from mmengine.optim import CosineAnnealingLR

    def schedulers(end):
        optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)
        return [CosineAnnealingLR(optim, by_epoch=True, begin=0, end=end)]

    saved = dict(param_schedulers=[s.state_dict() for s in schedulers(3)],
                 meta=dict(cfg='train_cfg = dict(max_epochs=3)'))
    hook = RunGuardHook()
    runner = FakeRunner(tmp_path, resume=True)
    runner.cfg.load_from = 'work/epoch_3.pth'
    runner.param_schedulers = schedulers(6)
    with pytest.raises(ValueError) as info:
        hook.after_load_checkpoint(runner, saved)
    message = str(info.value)
    assert 'CosineAnnealingLR.end: 3 in the checkpoint, 6 now' in message
    assert 'T_max: 3 in the checkpoint, 6 now' in message
    assert '--cfg-options train_cfg.max_epochs=3' in message
    assert 'load_from=work/epoch_3.pth' in message
    # same schedule, progress aside: fine
    stepped = schedulers(3)
    stepped[0].step()
    runner.param_schedulers = schedulers(3)
    hook.after_load_checkpoint(
        runner, dict(param_schedulers=[s.state_dict() for s in stepped]))
    # load_from (not a resume) starts the schedule afresh: fine
    runner.cfg.resume = False
    runner.param_schedulers = schedulers(6)
    hook.after_load_checkpoint(runner, saved)
    # and the check can be switched off
    runner.cfg.resume = True
    RunGuardHook(check_resumed_schedule=False).after_load_checkpoint(
        runner, saved)


def test_the_old_schedule_check_key_names_the_new_one():
    with pytest.raises(TypeError, match='default_hooks.run_guard'):
        AtomicCheckpointHook(check_resumed_schedule=False)
