"""What tools/train.py and tools/test.py share: the arguments and config
edits they have in common with MMPretrain's tools of the same names."""
import logging
import os
import os.path as osp
import sys
import traceback
from contextlib import contextmanager
from copy import deepcopy

from mmengine.config import ConfigDict, DictAction

from etf_plugin.utils.dist import (destroy_process_group, fall_back_to_gloo,
                                   init_dist_without_gpu)


def add_common_args(parser):
    """Add ``--work-dir``, ``--no-pin-memory``, ``--cfg-options``,
    ``--launcher`` and ``--local_rank`` to ``parser``."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse(parser):
    """Parse the arguments; export ``LOCAL_RANK`` as torch.distributed.launch
    expects."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_work_dir(cfg, args):
    """Work dir priority: ``--work-dir`` > ``work_dir`` in the config >
    ``./work_dirs/<config name>``."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def set_dataloader_defaults(cfg, args, fields, **defaults):
    """Fill dataloader defaults (``pin_memory``, collate function, and
    ``defaults``) under the values the config sets."""
    for field in fields:
        if cfg.get(field, None) is None:
            continue
        dataloader_cfg = ConfigDict(
            pin_memory=True, collate_fn=dict(type='default_collate'),
            **defaults)
        dataloader_cfg.update(deepcopy(cfg[field]))
        if args.no_pin_memory:
            dataloader_cfg.pin_memory = False
        cfg[field] = dataloader_cfg


def finish(cfg, args):
    """Apply ``--cfg-options`` last, then the launcher and its backend (gloo
    and a process group initialised here when no GPU is visible)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.launcher != 'none':
        fall_back_to_gloo(cfg)
        init_dist_without_gpu(args.launcher, cfg.env_cfg.dist_cfg)
    return cfg


@contextmanager
def exit_at_once_if_distributed():
    """On an exception in a distributed run, print it and end the process
    at once (exit status 1) instead of through the interpreter's normal
    shutdown.

    After a failed collective (e.g. one that timed out on a frozen rank,
    ``env_cfg.dist_cfg.timeout``) the process group is unusable, and tearing
    it down, the dataloader workers and the rest takes several more seconds
    that only delay the launcher, which stops the other ranks when this one
    ends. Log handlers are flushed first. Outside a distributed run the
    exception propagates as usual. After a run that ended normally the
    process group is destroyed, so the process exits cleanly.
    tools/train.py and tools/test.py run their runner inside it
    (tools/dist_train.sh, tools/dist_test.sh).
    """
    try:
        yield
    except BaseException:
        import torch.distributed as torch_dist
        if not (torch_dist.is_available() and torch_dist.is_initialized()
                and torch_dist.get_world_size() > 1):
            raise
        error = sys.exc_info()[1]
        status = 1
        if isinstance(error, SystemExit):
            status = error.code if isinstance(error.code, int) else 1
        else:
            traceback.print_exc()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    destroy_process_group()
