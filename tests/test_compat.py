"""The checkpoint allow-list (etf_plugin.compat) refuses crafted checkpoints
that would change HistoryBuffer's class-level state, and still loads what
mmengine saves. (The older refusal tests are in tests/tools/
test_train_resume.py.)"""
import io
import pickle
import struct
import zipfile

import pytest
import torch

import etf_plugin  # noqa: F401  (allow-lists mmengine's types)
from etf_plugin.compat import history_buffer_getattr

HB_MODULE = 'mmengine.logging.history_buffer'


# A tiny pickle assembler (protocol 2, as torch.save writes): crafted
# checkpoints cannot be made with torch.save, whose pickler refuses them.
def global_(module, name):
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def text(value):
    data = value.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def getattr_(name, module='builtins'):
    """``getattr(HistoryBuffer, name)`` as pickle opcodes."""
    return (global_(module, 'getattr') + global_(HB_MODULE, 'HistoryBuffer')
            + text(name) + b'\x86R')


def history_buffer(state_items):
    """A HistoryBuffer built as mmengine checkpoints build it (NEWOBJ, then
    BUILD with a state dict), with ``state_items`` as opcodes."""
    return (global_(HB_MODULE, 'HistoryBuffer') + b')\x81' + b'}(' +
            state_items + b'ub')


def statistics_methods(**methods):
    items = b''.join(text(key) + getattr_(value)
                     for key, value in methods.items())
    return text('statistics_methods') + b'}(' + items + b'u'


def save_pickle(path, payload: bytes):
    """A torch.save zip file whose data.pkl is ``payload``."""
    buffer = io.BytesIO()
    torch.save({}, buffer)
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(
            path, 'w', zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith('/data.pkl'):
                data = b'\x80\x02' + payload + b'.'
            target.writestr(info.filename, data)


@pytest.fixture
def class_statistics():
    """HistoryBuffer's class-level statistics methods, restored afterwards
    whatever a payload did to them."""
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer()  # registers the defaults
    before = dict(HistoryBuffer._statistics_methods)
    yield before
    HistoryBuffer._statistics_methods.clear()
    HistoryBuffer._statistics_methods.update(before)


def test_register_statistics_is_unreachable(tmp_path, class_statistics):
    from mmengine.logging.history_buffer import HistoryBuffer

    payloads = {
        # the bound classmethod itself, for a later call
        'getattr': getattr_('register_statistics'),
        # installed as a statistic: HistoryBuffer.__setstate__ merges it
        # into the class-level table, so statistics('mean') would call it
        'statistic': history_buffer(
            statistics_methods(mean='register_statistics')),
        # and the other public methods are no more reachable
        'statistics': getattr_('statistics', module='__builtin__'),
        'update': getattr_('update'),
    }
    for name, payload in payloads.items():
        path = tmp_path / f'{name}.pth'
        save_pickle(path, payload)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
        assert HistoryBuffer._statistics_methods == class_statistics, name
    with pytest.raises(pickle.UnpicklingError, match='register_statistics'):
        history_buffer_getattr(HistoryBuffer, 'register_statistics')


def test_mean_cannot_be_made_the_max(tmp_path, class_statistics):
    from mmengine.logging.history_buffer import HistoryBuffer

    payloads = {
        # the class-level table, shared by every buffer of the process
        'class': history_buffer(statistics_methods(mean='max')),
        # a new entry in it
        'new': history_buffer(statistics_methods(median='max')),
        # an instance attribute shadowing the class-level table
        'instance': history_buffer(
            text('_statistics_methods') + b'}(' + text('mean') +
            getattr_('max') + b'u'),
    }
    for name, payload in payloads.items():
        path = tmp_path / f'{name}.pth'
        save_pickle(path, payload)
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
        assert HistoryBuffer._statistics_methods == class_statistics, name
        buffer = HistoryBuffer()
        buffer.update(1.0)
        buffer.update(3.0)
        assert buffer.statistics('mean') == 2.0, name


def test_mmengine_message_hub_still_loads(tmp_path, class_statistics):
    """What a checkpoint really holds (pickletools on a digits checkpoint:
    HistoryBuffer with its four default statistics via getattr, numpy
    arrays and scalars) loads under weights_only, as real HistoryBuffers."""
    from mmengine.logging import HistoryBuffer, MessageHub

    hub = MessageHub.get_instance('compat_test')
    for value in (0.5, 0.25):
        hub.update_scalar('train/loss', value)
    hub.update_info('keep_ckpt_ids', [1, 2])
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': hub.state_dict()}, path)
    data = zipfile.ZipFile(path).read('hub/data.pkl')
    assert data.count(b'getattr') == 1  # memoised: one GLOBAL, four uses

    loaded = torch.load(path)['message_hub']
    buffer = loaded['log_scalars']['train/loss']
    assert type(buffer) is HistoryBuffer
    assert buffer.mean() == 0.375 and buffer.statistics('max') == 0.5
    assert loaded['runtime_info']['keep_ckpt_ids'] == [1, 2]
    assert HistoryBuffer._statistics_methods == class_statistics
