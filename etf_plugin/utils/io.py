"""Files that are never half-written: the one atomic writer, shared by the
checkpoint backend (:mod:`etf_plugin.engine.checkpoint_io`), the
neural-collapse records and the detection benchmark's results."""
import os
import os.path as osp


def temporary_path(path: str) -> str:
    """The temporary name ``path`` is written under before the rename: a
    hidden file in the same folder (so the rename stays on one file
    system), unique per process."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.tmp-{os.getpid()}')


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`temporary_path`'s."""
    return name.startswith('.') and '.tmp-' in name


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` and ``fsync`` it (no rename)."""
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically: readers (and
    a process that dies at any point) see either the old file or the
    complete new one, never a part of it.

    The bytes go to :func:`temporary_path` (same folder), are ``fsync``\\ ed,
    renamed over ``path``, and the folder is ``fsync``\\ ed.

    Args:
        path (str): The final file name; its folder is created if needed.
        data (bytes): The new contents.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    fsync_folder(folder)
