"""Test (and evaluate) a checkpoint. Same interface as MMPretrain's
``tools/test.py``:

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--out FILE [--out-item {metrics,pred}]] [--amp] [--tta]
        [--heldout N] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

``--heldout N`` evaluates, instead of the test set, N images per class of
the training split that the long-tailed training subset left out: where
knobs (τ, a post-hoc scale) are chosen without touching the test split.

It also imports etf_plugin, switches on its verified checkpoints
(``enable_verified_checkpoints``: also for configs without
``AtomicCheckpointHook``) and, for distributed runs without a GPU, switches
the backend to gloo.
"""
import argparse
from copy import deepcopy

import mmengine
from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import etf_plugin  # noqa: F401  (registers the plugin's modules)
from etf_plugin.engine import enable_verified_checkpoints
from etf_plugin.datasets import heldout_dataset_cfg, innermost_dataset_cfg
from common import (add_common_args, exit_at_once_if_distributed, finish,
                    parse, set_dataloader_defaults, set_work_dir)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='the file to write results to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='write the metrics or the predictions (default) to --out')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision test')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation: the config\'s tta_model/tta_pipeline, '
        'or flip TTA averaging the class scores')
    parser.add_argument(
        '--heldout',
        type=int,
        metavar='N',
        help='evaluate on N held-out images per class of the training split '
        '(those the LongTailDataset training subset does not keep) instead '
        'of the test set')
    add_common_args(parser)
    args = parse(parser)
    if args.heldout is not None and args.heldout < 1:
        parser.error('--heldout must be a positive number of images')
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out')
    return args


def merge_args(cfg, args):
    """Merge command-line arguments into the config."""
    set_work_dir(cfg, args)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True
    if args.tta:
        if 'tta_model' not in cfg:
            cfg.tta_model = dict(type='mmpretrain.AverageClsScoreTTA')
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            cfg.tta_pipeline = deepcopy(test_pipeline)
            cfg.tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ], [test_pipeline[-1]]])
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg = finish(cfg, args)
    if args.heldout is not None:
        # After --cfg-options, so the held-out part follows the training
        # set the user asked for.
        test_pipeline = innermost_dataset_cfg(
            cfg.test_dataloader.dataset).get('pipeline')
        cfg.test_dataloader.dataset = heldout_dataset_cfg(
            cfg.train_dataloader.dataset, args.heldout, test_pipeline)
    set_dataloader_defaults(cfg, args, ('test_dataloader', ))
    return cfg


def main():
    args = parse_args()
    enable_verified_checkpoints()
    cfg = merge_args(Config.fromfile(args.config), args)
    with exit_at_once_if_distributed():
        runner = (RUNNERS.build(cfg) if 'runner_type' in cfg else
                  Runner.from_cfg(cfg))
        if args.out and args.out_item in ('pred', None):
            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out))
        metrics = runner.test()
        if args.out and args.out_item == 'metrics' and is_main_process():
            mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    main()
