"""Checkpoint files that are never half-written and never load silently
corrupted: atomic writes with a SHA-256 sidecar, and a verifying loader.

MMEngine 0.10.7 writes a checkpoint in place (``LocalBackend.put`` opens the
final name with ``'wb'``), without ``fsync``, and loads whatever bytes are
there. A process killed during a save leaves a half-written file under the
final name; a flipped bit in a tensor record loads without complaint; an
empty file gives a bare ``EOFError``. This module fixes both ends from the
plugin, without patching MMEngine:

* :class:`AtomicLocalBackend`, a file backend (``'etf_atomic_local'`` in
  MMEngine's backend registry once enabled). Its ``put`` writes the bytes to
  a temporary file in the same folder, ``fsync``\\ s it, renames it over the
  final name and ``fsync``\\ s the folder; it records the SHA-256 of the bytes
  in ``<name>.sha256`` (``sha256sum`` format, written the same way), so the
  file under the final name is always complete and always has a matching
  checksum. :class:`~etf_plugin.engine.hooks.AtomicCheckpointHook` saves
  through it.
* :func:`load_from_verified_local`, MMEngine's ``CheckpointLoader`` for
  local paths once enabled (in place of ``load_from_local``), so every load
  through MMEngine is verified first: ``load_from``, ``--resume``,
  ``tools/test.py`` (ours and MMPretrain's),
  ``init_cfg=dict(type='Pretrained')`` and
  ``mmengine.runner.load_checkpoint``. It refuses an empty file, a file whose
  bytes do not match its sidecar, and, without a sidecar, a truncated zip
  archive or one whose CRC-32 records do not match (``torch.save`` stores a
  CRC-32 per record, which ``torch.load`` does not check), each with a
  :class:`CorruptCheckpointError` that names the file and the other
  checkpoints next to it.

Importing this module changes nothing in MMEngine or torch.
:func:`enable_verified_checkpoints` switches both ends on (with the safe
unpickler's allow-list of :mod:`etf_plugin.compat`) for the process:
``AtomicCheckpointHook`` calls it in ``before_run``, which MMEngine runs
before it loads or resumes a checkpoint, and scripts outside a Runner call
it themselves.
"""
import errno
import glob
import hashlib
import os
import os.path as osp
import shutil
import zipfile
from typing import List, Optional

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader

from etf_plugin.compat import allow_mmengine_checkpoint_globals

# The atomic writer lives in etf_plugin.utils.io (the NC records and the
# detection benchmark use it too); re-exported here under the same names.
from etf_plugin.utils.io import (atomic_write, fsync_folder,  # noqa: F401
                                 is_temporary, temporary_path, write_file)

#: Suffix of the checksum file next to each checkpoint.
SIDECAR_SUFFIX = '.sha256'
#: Name of the backend in MMEngine's file-backend registry.
ATOMIC_BACKEND = 'etf_atomic_local'
_ZIP_MAGIC = b'PK\x03\x04'
_CHUNK = 1 << 20
# What torch.load's errors say about a file that ends early.
_TRUNCATION_SIGNS = ('PytorchStreamReader', 'unexpected EOF',
                     'might be corrupted')


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is empty, truncated or does not match its
    recorded checksum."""


class CheckpointSpaceError(OSError):
    """A checkpoint that did not fit: the disk or quota is full, or the file
    exceeds the process's file-size limit. Its ``errno`` is the system's
    (``ENOSPC``, ``EDQUOT`` or ``EFBIG``)."""


#: The errors of a write that ran out of room.
OUT_OF_SPACE = frozenset(
    code for code in (getattr(errno, name, None)
                      for name in ('ENOSPC', 'EDQUOT', 'EFBIG'))
    if code is not None)


def sidecar_path(path: str) -> str:
    """The checksum file of checkpoint ``path``: ``<path>.sha256``."""
    return path + SIDECAR_SUFFIX


def sha256_of_file(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def read_sidecar(path: str) -> Optional[List[str]]:
    """The SHA-256 digests recorded for checkpoint ``path`` (normally one;
    two while a file of the same name is being replaced), or None when it
    has no sidecar."""
    side = sidecar_path(path)
    if not osp.isfile(side):
        return None
    with open(side) as f:
        return [line.split()[0].lower() for line in f if line.strip()]


def _sidecar_text(digests: List[str], path: str) -> bytes:
    name = osp.basename(path)
    return ''.join(f'{d}  {name}\n' for d in digests).encode()


def save_with_checksum(path: str, data: bytes) -> str:
    """Write checkpoint bytes atomically to ``path`` with their SHA-256 in
    ``<path>.sha256``; returns the digest.

    The sidecar always holds the digest of the file under ``path``: it is
    widened to old and new digest before the rename and narrowed to the new
    one after it, so a process killed at any point leaves a checkpoint that
    verifies (the old one or the new one). A write that fails (e.g. a full
    disk, :class:`CheckpointSpaceError`) leaves the old file and its sidecar
    as they were and no temporary file.
    """
    digest = hashlib.sha256(data).hexdigest()
    side = sidecar_path(path)
    new = _sidecar_text([digest], path)
    try:
        if not osp.isfile(path):
            atomic_write(side, new)  # a sidecar without its file is harmless
            try:
                atomic_write(path, data)
            except OSError:  # e.g. a full disk: no sidecar without file
                remove_checkpoint(side)
                raise
            return digest
        old = read_sidecar(path)
        if old is None:
            # An unrecorded file of the same name: until the sidecar is
            # written, the new file is checked by its CRC-32 records alone.
            atomic_write(path, data)
            atomic_write(side, new)
            return digest
        atomic_write(side, _sidecar_text([digest] + old, path))
        try:
            atomic_write(path, data)
        except OSError:
            atomic_write(side, _sidecar_text(old, path))
            raise
        atomic_write(side, new)
        return digest
    except OSError as error:
        if error.errno not in OUT_OF_SPACE:
            raise
        raise _space_error(error, path, len(data)) from error


def _space_error(error: OSError, path: str, needed: int):
    folder = osp.dirname(osp.abspath(path))
    try:
        free = f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB free'
    except OSError:
        free = 'free space unknown'
    cause = ('the file is larger than this process may write (ulimit -f)'
             if error.errno == errno.EFBIG else
             f'{os.strerror(error.errno)}; {free} there')
    return CheckpointSpaceError(
        error.errno,
        f'Cannot save checkpoint {path}: it needs {needed / 2**20:.1f} MiB '
        f'({needed} bytes) in {folder} and {cause}. Nothing was lost: the '
        f'earlier checkpoints and last_checkpoint in {folder} are unchanged '
        f'and complete, and the partial file was removed. Make room (or use '
        f'a --work-dir on a larger file system), then continue with '
        f'--resume.', path)


def remove_checkpoint(path: str) -> None:
    """Delete a checkpoint and its sidecar (missing files are fine)."""
    for p in (path, sidecar_path(path)):
        if osp.isfile(p):
            os.remove(p)


def _neighbours(path: str) -> str:
    """A hint naming the other checkpoints in ``path``'s folder, newest
    first."""
    folder = osp.dirname(osp.abspath(path))
    others = [
        p for p in glob.glob(osp.join(folder, '*.pth'))
        if osp.abspath(p) != osp.abspath(path)
    ]
    if not others:
        return ' No other checkpoint is in its folder.'
    others.sort(key=osp.getmtime, reverse=True)
    shown = ', '.join(others[:3])
    return (f' Use another checkpoint, e.g. one of {shown} (newest first; '
            f'--resume CHECKPOINT, load_from=CHECKPOINT or tools/test.py '
            f'CONFIG CHECKPOINT).')


def verify_checkpoint_file(path: str) -> None:
    """Raise :class:`CorruptCheckpointError` unless ``path`` is a complete,
    intact checkpoint file.

    Checks, in order: the file is not empty; its SHA-256 matches its
    sidecar when it has one; otherwise, for ``torch.save``'s zip format,
    that the archive is complete and every record's CRC-32 matches.
    """
    size = osp.getsize(path)
    if size == 0:
        raise CorruptCheckpointError(
            f'Checkpoint {path} is empty (0 bytes): its save was interrupted '
            f'or the copy failed.' + _neighbours(path))
    digests = read_sidecar(path)
    if digests is not None:
        actual = sha256_of_file(path)
        if actual not in digests:
            raise CorruptCheckpointError(
                f'Checkpoint {path} ({size} bytes) does not match the SHA-256 '
                f'recorded in {sidecar_path(path)} when it was saved: it is '
                f'corrupted or truncated (or was replaced by another file of '
                f'the same name). Refusing to load it.' + _neighbours(path) +
                f' If you replaced the file on purpose, delete '
                f'{sidecar_path(path)}.')
        return
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic != _ZIP_MAGIC:
        return  # legacy torch format: torch.load reports what it finds
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise CorruptCheckpointError(
            f'Checkpoint {path} ({size} bytes) is truncated or damaged: it is '
            f'not a complete checkpoint archive ({error}).' +
            _neighbours(path)) from error
    if bad is not None:
        raise CorruptCheckpointError(
            f'Checkpoint {path} is corrupted: the CRC-32 of its record '
            f'{bad!r} does not match its contents (a flipped bit on disk or '
            f'in a copy). Refusing to load it.' + _neighbours(path))


def load_from_verified_local(filename: str, map_location=None):
    """MMEngine's ``load_from_local``, verified first
    (:func:`verify_checkpoint_file`), with clear messages for missing,
    empty and truncated files."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.' +
                                _neighbours(filename))
    verify_checkpoint_file(filename)
    try:
        return torch.load(filename, map_location=map_location)
    except EOFError as error:
        raise CorruptCheckpointError(
            f'Checkpoint {filename} ends early ({error!r}): it is truncated.' +
            _neighbours(filename)) from error
    except RuntimeError as error:
        if not any(sign in str(error) for sign in _TRUNCATION_SIGNS):
            raise
        raise CorruptCheckpointError(
            f'Checkpoint {filename} cannot be read ({error}): it is truncated '
            f'or damaged.' + _neighbours(filename)) from error


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend, with atomic, checksummed ``put``
    (:func:`save_with_checksum`) and a ``remove`` that deletes the sidecar
    too. Select it with ``backend_args=dict(backend='etf_atomic_local')``.
    """

    def put(self, obj: bytes, filepath) -> None:
        save_with_checksum(str(filepath), obj)

    def remove(self, filepath) -> None:
        remove_checkpoint(str(filepath))


def enable_verified_checkpoints() -> None:
    """Switch on the plugin's checkpoint guarantees for this process
    (idempotent).

    * :class:`AtomicLocalBackend` becomes available to MMEngine as
      ``backend_args=dict(backend='etf_atomic_local')``;
    * :func:`load_from_verified_local` becomes MMEngine's loader for local
      paths, so ``load_from``, ``--resume``, ``tools/test.py``,
      ``init_cfg=dict(type='Pretrained')`` and ``load_checkpoint`` verify
      the file first;
    * ``torch.load``'s safe unpickler accepts what an MMEngine checkpoint
      holds, and nothing more (:mod:`etf_plugin.compat`).

    ``import etf_plugin`` does none of this. ``AtomicCheckpointHook`` (in
    every config of this repo) calls it in ``before_run``, before MMEngine
    loads or resumes a checkpoint, so our tools and MMPretrain's run our
    configs with it. Scripts that load checkpoints without a Runner call it
    first, e.g. before ``mmpretrain.get_model(..., pretrained=...)``.
    """
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_verified_local, force=True)
    allow_mmengine_checkpoint_globals()
