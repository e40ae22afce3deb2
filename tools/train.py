"""Train a model. Same interface as MMPretrain's ``tools/train.py``:

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--no-validate] [--auto-scale-lr] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

It also imports etf_plugin, switches on its verified checkpoints
(``enable_verified_checkpoints``) and, for distributed runs without a GPU,
switches the backend to gloo. A work dir that holds checkpoints is refused
unless the run resumes (--resume), rather than overwriting part of an
earlier run.
"""
import argparse

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import etf_plugin  # noqa: F401  (registers the plugin's modules)
from etf_plugin.engine import enable_verified_checkpoints
from etf_plugin.engine.hooks.run_guard_hook import check_work_dir_is_new
from common import (add_common_args, exit_at_once_if_distributed, finish,
                    parse, set_dataloader_defaults, set_work_dir)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work directory')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--persistent-workers',
        action='store_true',
        help='keep the dataloader workers alive between epochs (faster '
        'epoch starts, but a resumed run no longer repeats the '
        'augmentations of an uninterrupted one)')
    add_common_args(parser)
    return parse(parser)


def merge_args(cfg, args):
    """Merge command-line arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    set_work_dir(cfg, args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    set_dataloader_defaults(
        cfg,
        args, ('train_dataloader', 'val_dataloader', 'test_dataloader'),
        persistent_workers=args.persistent_workers)
    return finish(cfg, args)


def main():
    args = parse_args()
    enable_verified_checkpoints()
    cfg = merge_args(Config.fromfile(args.config), args)
    # Before the Runner writes anything there (it dumps the config into the
    # work dir); RunGuardHook checks in before_run, for MMPretrain's own
    # tools/train.py.
    check_work_dir_is_new(cfg.work_dir, resuming=cfg.get('resume', False))
    with exit_at_once_if_distributed():
        runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
                  Runner.from_cfg(cfg))
        runner.train()


if __name__ == '__main__':
    main()
