"""Neural-collapse analysis of a trained classifier: every metric of
``etf_plugin.functional.neural_collapse`` at several stages of the network,
on several splits, in one forward pass per batch.

    python tools/analysis/nc_eval.py CONFIG CHECKPOINT
        [--split train val test] [--stages backbone.1 backbone.2 pre_logits]
        [--max-samples N] [--seed S] [--batch-size B] [--out-dir DIR]
        [--work-dir DIR]
        [--many-thr T] [--few-thr T] [--nc4-cache-mb MB]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
    tools/dist_nc_eval.sh CONFIG CHECKPOINT GPUS [the arguments above]

Any MMPretrain ``ImageClassifier`` config works (a plugin component is not
needed), with a checkpoint of this plugin or of MMPretrain's model zoo.

- ``--split``: ``train`` is the config's training set, long-tail wrapper
  included (so the shot groups are the run's), with the test pipeline;
  ``val`` and ``test`` are the config's loaders. Default: train test.
- ``--stages``: ``backbone.<i>`` (the i-th backbone stage: ``res_layers``,
  ``stages`` or ``layers``), ``neck``, ``pre_logits`` (what the classifier
  sees), ``unnormalized``/``normalized`` (the head's feature before / after
  L2 normalisation) or any module name; feature maps are global-average
  pooled, a transformer's tokens reduced to the class token. Default: every
  backbone stage, the neck and pre_logits.
- Training class counts (shot groups): the checkpoint's (saved by
  ``ClassCountsHook``), else the config's training set. Thresholds: those
  of the config's ``LongTailAccuracy`` or ``NeuralCollapseHook``, else 100
  and 20.
- ``--max-samples N``: a fixed random subset of each split (``--seed``).

Writes ``OUT_DIR/nc_eval.json`` (every metric per split and stage, and the
settings), ``OUT_DIR/nc_eval.png`` (NC1 and CDNV against depth per split,
minority collapse per shot group) and prints a table. Distributed: each rank
measures its share and the statistics are all-reduced, so the numbers equal
a one-process run.
"""
import argparse
import json
import os
import os.path as osp
import platform
import sys
import time

import mmengine
import torch
from mmengine.config import Config
from mmengine.dist import get_world_size, is_main_process
from mmengine.registry import DATASETS
from mmengine.runner import Runner

import etf_plugin  # noqa: F401  (registers the plugin's modules)
from etf_plugin.datasets.utils import training_class_counts
from etf_plugin.engine.hooks.class_counts_hook import CHECKPOINT_KEY
from etf_plugin.engine.neural_collapse import (build_nc_dataloader,
                                              default_stages,
                                              evaluate_neural_collapse,
                                              train_set_with_test_pipeline)
from etf_plugin.utils import num_classes_of, unwrap_model
from etf_plugin.visualization import nc_depth_figure

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from common import (add_common_args, exit_at_once_if_distributed,  # noqa
                    finish, parse)

SPLITS = ('train', 'val', 'test')
# Columns of the printed table: (metric, header).
TABLE = [('dim', 'd'), ('num_samples', 'N'), ('nc1', 'NC1'),
         ('nc1_svd', 'NC1svd'), ('nc1_ratio', 'trW/trB'), ('cdnv', 'CDNV'),
         ('nc2_equinorm', 'equinorm'), ('nc2_equiangle', 'equiang'),
         ('nc2_nearest_etf_dist', 'ETFdist'), ('nc2_erank', 'erank'),
         ('nc3', 'NC3'), ('nc4', 'NC4'), ('cdnv_many', 'CDNVmany'),
         ('cdnv_few', 'CDNVfew'), ('mc_means_cos_few', 'cosFew'),
         ('mean_norm_ratio_few', 'normFew')]


def parse_args():
    parser = argparse.ArgumentParser(
        description='Neural-collapse metrics of a checkpoint per stage and '
        'split')
    parser.add_argument('config', help='the model\'s config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--split', nargs='+', choices=SPLITS, default=['train', 'test'],
        help='splits to measure (default: train test)')
    parser.add_argument(
        '--stages', nargs='+',
        help='feature stages (default: every backbone stage, neck, '
        'pre_logits)')
    parser.add_argument(
        '--max-samples', type=int,
        help='a fixed random subset of this many samples per split')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the --max-samples subset')
    parser.add_argument('--batch-size', type=int, help='batch size')
    parser.add_argument(
        '--out-dir',
        help='where nc_eval.json/.png go (default: the work dir, '
        'work_dirs/nc_eval/<config name> unless --work-dir)')
    parser.add_argument('--many-thr', type=float, help='many-shot: more '
                        'training samples than this')
    parser.add_argument('--few-thr', type=float, help='few-shot: fewer '
                        'training samples than this')
    parser.add_argument(
        '--nc4-cache-mb', type=float, default=1024,
        help='features kept per rank for NC4 instead of a second pass (MiB)')
    add_common_args(parser)
    args = parse(parser)
    if args.max_samples is not None and args.max_samples < 1:
        parser.error('--max-samples must be positive')
    return args


def loader_cfgs(cfg, splits):
    """Split -> dataloader config; an error naming the missing key."""
    cfgs = {}
    for split in splits:
        if split == 'train':
            loader = train_set_with_test_pipeline(cfg)
        else:
            loader = cfg.get(f'{split}_dataloader')
        if not loader or not loader.get('dataset'):
            raise SystemExit(f'--split {split}: the config has no '
                             f'{split}_dataloader with a dataset; choose '
                             f'another split or add it to the config.')
        cfgs[split] = loader
    return cfgs


def shot_thresholds(cfg, args):
    """--many-thr/--few-thr, else the config's LongTailAccuracy or
    NeuralCollapseHook thresholds, else 100 and 20."""
    candidates = []
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key) or []
        candidates += evaluator if isinstance(evaluator, list) else \
            [evaluator]
    candidates += cfg.get('custom_hooks') or []
    many, few = 100, 20
    for item in candidates:
        if isinstance(item, dict) and 'many_thr' in item:
            many, few = item['many_thr'], item.get('few_thr', few)
            break
    return (args.many_thr if args.many_thr is not None else many,
            args.few_thr if args.few_thr is not None else few)


def print_table(results):
    widths = [max(9, len(h) + 1) for _, h in TABLE]
    head = f'{"split":<6}{"stage":<13}' + ''.join(
        f'{h:>{w}}' for (_, h), w in zip(TABLE, widths))
    lines = [head]
    for split, stages in results.items():
        for stage, metrics in stages.items():
            cells = []
            for (key, _), w in zip(TABLE, widths):
                value = metrics.get(key)
                if value is None:
                    cells.append(f'{"-":>{w}}')
                elif isinstance(value, int):
                    cells.append(f'{value:>{w}d}')
                else:
                    cells.append(f'{value:>{w}.4g}')
            lines.append(f'{split:<6}{stage:<13}' + ''.join(cells))
    print('\n'.join(lines), flush=True)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    # The Runner's logs go to the work dir, the results to --out-dir.
    cfg.work_dir = args.work_dir or osp.join(
        'work_dirs', 'nc_eval', osp.splitext(osp.basename(args.config))[0])
    out_dir = args.out_dir or cfg.work_dir
    cfg.load_from = None
    cfg.resume = False
    cfg = finish(cfg, args)
    cfgs = loader_cfgs(cfg, args.split)
    with exit_at_once_if_distributed():
        runner = Runner.from_cfg(cfg)
        checkpoint = runner.load_checkpoint(args.checkpoint,
                                            map_location='cpu')
        model = unwrap_model(runner.model)
        num_classes = num_classes_of(model)
        stages = args.stages or default_stages(model)
        loaders = {}
        for split, loader_cfg in cfgs.items():
            if args.batch_size:
                loader_cfg = dict(loader_cfg, batch_size=args.batch_size)
            loaders[split] = build_nc_dataloader(
                loader_cfg, args.max_samples, args.seed, seed=runner.seed)
        counts = (checkpoint.get('meta') or {}).get(CHECKPOINT_KEY)
        counts_from = 'checkpoint'
        if counts is None and 'train' in loaders:
            counts = training_class_counts(loaders['train'].dataset,
                                           num_classes).tolist()
            counts_from = 'training set of the config'
        elif counts is None and cfg.get('train_dataloader'):
            try:
                dataset = DATASETS.build(cfg.train_dataloader.dataset)
                counts = training_class_counts(dataset, num_classes).tolist()
                counts_from = 'training set of the config'
            except Exception as error:  # noqa: BLE001
                runner.logger.warning(
                    f'No shot-group metrics: the checkpoint has no class '
                    f'counts and the training set does not build '
                    f'({error!r}).')
        if counts is None:
            counts_from = 'none (no shot-group metrics)'
        many_thr, few_thr = shot_thresholds(cfg, args)
        start = time.time()
        results = evaluate_neural_collapse(
            model, loaders, stages, counts, many_thr, few_thr,
            nc4_cache_mb=args.nc4_cache_mb,
            logger=runner.logger.instance_name)
        seconds = time.time() - start
        # read before the block ends: it destroys the process group
        world_size, main_process = get_world_size(), is_main_process()
    if not main_process:
        return
    settings = dict(
        config=args.config, checkpoint=args.checkpoint, splits=args.split,
        stages=stages, max_samples=args.max_samples, seed=args.seed,
        class_counts=counts, class_counts_from=counts_from,
        many_thr=many_thr, few_thr=few_thr, world_size=world_size,
        seconds=round(seconds, 2), torch=torch.__version__,
        mmengine=mmengine.__version__, python=platform.python_version(),
        nc4='fraction of samples whose nearest class mean is not the '
        'classifier\'s prediction (Papyan et al. 2020)')
    os.makedirs(out_dir, exist_ok=True)
    json_file = osp.join(out_dir, 'nc_eval.json')
    with open(json_file, 'w') as f:
        json.dump(dict(settings=settings, results=results), f, indent=1)
    fig = nc_depth_figure(results, num_classes)
    png_file = osp.join(out_dir, 'nc_eval.png')
    fig.savefig(png_file, dpi=100)
    print_table(results)
    print(f'{sum(r[stages[0]]["num_samples"] for r in results.values())} '
          f'samples, {len(stages)} stages, {world_size} process(es): '
          f'{seconds:.1f} s. Wrote {json_file} and {png_file}', flush=True)


if __name__ == '__main__':
    main()
