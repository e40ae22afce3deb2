"""τ-normalise the linear classifier of a trained checkpoint (Kang et al.,
ICLR 2020), optionally choosing τ on held-out data.

Every class row ``w_k`` of the classifier becomes ``w_k / ||w_k||^tau``
(:func:`etf_plugin.functional.tau_normalize`); the bias is set to zero, as
Kang et al. drop it (``--bias keep`` keeps it unchanged). The output keeps
the checkpoint's structure and keys, so it loads wherever the input did
(``tools/test.py``, ``load_from``, ``torch.load(weights_only=True)`` after
``import etf_plugin``); ``meta['tau_norm']`` records what was done.

    # rescale with a given tau
    python tools/analysis/tau_norm.py CONFIG CKPT --tau 0.5 --out NEW.pth
    # choose tau on held-out images, then write the best
    python tools/analysis/tau_norm.py CONFIG CKPT \\
        --sweep 0,0.25,0.5,0.75,1 --val-from-train 20 --out NEW.pth

τ is never chosen on the test set. ``--val-from-train N`` holds out up to
``N`` images per class from the images of the training split that
``LongTailDataset`` did not keep (the model never saw them; they are drawn
with ``--seed``); ``--val-config FILE`` uses the ``val_dataloader`` of
another config, e.g. one over ImageNet-LT's 20-per-class validation list,
and is refused when that loader is the test set. The best τ maximises the
mean per-class (balanced) accuracy on the held-out images.

Exits with status 1, saying why, when the checkpoint has no learnable linear
classifier (e.g. a fixed-ETF ``ETFHead`` checkpoint, whose classifier is the
buffer ``head.etf_vectors``).
"""
import argparse
import copy
import os.path as osp
import sys

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import Subset

import etf_plugin  # noqa: F401  (registers the plugin; safe checkpoints)
from etf_plugin.datasets import read_gt_labels
from etf_plugin.datasets.class_counts import load_class_counts
from etf_plugin.evaluation import LongTailAccuracy
from etf_plugin.functional import tau_normalize


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='τ-normalise the classifier of a checkpoint.')
    parser.add_argument(
        'config', help='the config the checkpoint was '
        'trained with')
    parser.add_argument('checkpoint', help='the checkpoint to rescale')
    parser.add_argument(
        '--tau', type=float, help='the exponent; default: the best of --sweep')
    parser.add_argument('--out', help='where to write the new checkpoint')
    parser.add_argument(
        '--bias',
        choices=['zero', 'keep'],
        default='zero',
        help='zero the classifier bias (Kang et al.; default) or keep it')
    parser.add_argument(
        '--weight-key',
        default='head.fc.weight',
        help='state-dict key of the (K, d) classifier '
        '(default: head.fc.weight, LinearClsHead)')
    parser.add_argument(
        '--sweep',
        type=parse_taus,
        help='comma-separated taus to evaluate on held-out data, '
        'e.g. 0,0.25,0.5,0.75,1')
    parser.add_argument(
        '--val-from-train',
        type=int,
        metavar='N',
        help='held-out data: up to N images per class of the training '
        'split that LongTailDataset left out')
    parser.add_argument(
        '--val-config',
        help='held-out data: the val_dataloader of this config (never the '
        'test set)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the --val-from-train draw (default 0)')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device of the sweep')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as in tools/train.py (e.g. the '
        'training set seed or imbalance ratio)')
    args = parser.parse_args(argv)
    if args.tau is None and args.sweep is None:
        parser.error('give --tau, or --sweep to choose it')
    if args.sweep is not None and (args.val_from_train
                                   is None) == (args.val_config is None):
        parser.error('--sweep needs exactly one of --val-from-train N and '
                     '--val-config FILE (never the test set)')
    if args.sweep is None and (args.val_from_train is not None
                               or args.val_config is not None):
        parser.error('--val-from-train / --val-config are used by --sweep')
    if args.val_from_train is not None and args.val_from_train < 1:
        parser.error('--val-from-train must be positive')
    return args


def parse_taus(text):
    """``'0,0.5,1'`` -> ``[0.0, 0.5, 1.0]``."""
    try:
        taus = [float(t) for t in text.split(',') if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'--sweep takes comma-separated numbers, got {text!r}')
    if not taus:
        raise argparse.ArgumentTypeError('--sweep got no tau')
    return taus


def load_checkpoint(path):
    """The checkpoint and its state dict (the checkpoint itself when it is
    a bare state dict)."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path} is not a checkpoint dict.')
    state_dict = checkpoint.get('state_dict', checkpoint)
    return checkpoint, state_dict


def classifier_keys(state_dict, weight_key, path):
    """``(weight_key, bias_key or None)``; a ``ValueError`` saying what is
    there instead when the checkpoint has no such classifier."""
    if weight_key not in state_dict:
        etf = [k for k in state_dict if k.endswith('etf_vectors')]
        hint = (f' It has {etf[0]}: a fixed simplex-ETF classifier, whose '
                f'rows all have the same norm already; τ-normalisation '
                f'rescales a learnable linear classifier.' if etf else '')
        heads = sorted({k for k in state_dict if k.startswith('head.')})
        raise ValueError(
            f'{path} has no learnable classifier {weight_key!r}.{hint} '
            f'Head keys: {heads[:10]}. Pass --weight-key for another head.')
    weight = state_dict[weight_key]
    if weight.dim() != 2:
        raise ValueError(f'{weight_key} has shape {tuple(weight.shape)}, '
                         f'not (num_classes, dim).')
    bias_key = weight_key[:-len('weight')] + 'bias' if weight_key.endswith(
        'weight') else None
    return weight_key, bias_key if bias_key in state_dict else None


def normalized_classifier(weight, bias, tau, bias_mode):
    """The τ-normalised ``(weight, bias)``; bias None stays None."""
    new_weight = tau_normalize(weight, tau)
    if bias is None or bias_mode == 'keep':
        return new_weight, bias
    return new_weight, torch.zeros_like(bias)


def held_out_from_train(cfg, per_class, seed):
    """Up to ``per_class`` images per class of the training split that the
    ``LongTailDataset`` of ``cfg.train_dataloader`` did not keep, with the
    test pipeline."""
    from mmpretrain.registry import DATASETS
    train_cfg = cfg.train_dataloader.dataset
    if train_cfg.get('type') != 'LongTailDataset':
        raise ValueError(
            f'--val-from-train needs train_dataloader.dataset to be a '
            f'LongTailDataset (its unused images are the held-out set), got '
            f'{train_cfg.get("type")}; use --val-config instead.')
    long_tail = DATASETS.build(train_cfg)
    # _get_ori_dataset_idx: MMEngine's dataset-wrapper protocol, as in
    # ClassBalancedDataset.
    kept = np.array(
        [long_tail._get_ori_dataset_idx(i) for i in range(len(long_tail))])
    split_cfg = copy.deepcopy(train_cfg.dataset)
    split_cfg.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    split = DATASETS.build(split_cfg)
    labels = read_gt_labels(split)
    unused = np.setdiff1d(np.arange(len(labels)), kept)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        pool = unused[labels[unused] == c]
        chosen.extend(rng.permutation(pool)[:per_class].tolist())
    if not chosen:
        raise ValueError('LongTailDataset kept every image of the training '
                         'split: nothing to hold out; use --val-config.')
    return Subset(split, sorted(chosen))


def held_out_loader(cfg, args):
    """The dataloader of the held-out images (never the test set)."""
    if args.val_config is not None:
        val_cfg = Config.fromfile(args.val_config)
        loader_cfg = copy.deepcopy(val_cfg.val_dataloader)
        for test_cfg in (cfg, val_cfg):
            if loader_cfg.dataset == test_cfg.get('test_dataloader',
                                                  {}).get('dataset'):
                raise ValueError(
                    f'The val_dataloader of {args.val_config} is the test '
                    f'set: choosing tau on it would report a tuned test '
                    f'accuracy. Point it at held-out data.')
    else:
        loader_cfg = copy.deepcopy(cfg.val_dataloader or cfg.test_dataloader)
        loader_cfg.dataset = held_out_from_train(cfg, args.val_from_train,
                                                 args.seed)
    loader_cfg.sampler = dict(type='DefaultSampler', shuffle=False)
    loader_cfg.setdefault('collate_fn', dict(type='default_collate'))
    loader_cfg.pop('persistent_workers', None)
    return Runner.build_dataloader(loader_cfg)


def extract_features(model, loader, device):
    """``(features, labels)`` of every sample: the head's ``pre_logits``."""
    feats, labels = [], []
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            feats.append(
                model.extract_feat(data['inputs'],
                                   stage='pre_logits').to(device))
            labels.append(
                torch.cat([s.gt_label for s in data['data_samples']]))
    return torch.cat(feats), torch.cat(labels).cpu()


def shot_thresholds(cfg):
    """``many_thr`` / ``few_thr`` of the config's ``LongTailAccuracy``, if
    it has one."""
    evaluators = cfg.get('val_evaluator') or []
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    for evaluator in evaluators:
        if evaluator.get('type') == 'LongTailAccuracy':
            return dict(
                many_thr=evaluator.get('many_thr', 100),
                few_thr=evaluator.get('few_thr', 20))
    return dict()


def sweep(cfg, args, state_dict, weight_key, bias_key):
    """Evaluate every tau of ``args.sweep`` on the held-out images.

    Returns:
        tuple: The table rows (dicts of ``LongTailAccuracy`` results; the
        first one is the original classifier), the best tau, the number of
        held-out images and the classes without any.
    """
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    # As the Runner does: a top-level data_preprocessor belongs to the model.
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.load_state_dict(state_dict, strict=True)
    model.to(args.device).eval()
    feats, labels = extract_features(model, held_out_loader(cfg, args),
                                     args.device)
    train_counts = load_class_counts(
        train_dataset=cfg.train_dataloader.dataset, owner='tau_norm.py')
    weight = state_dict[weight_key].to(args.device, feats.dtype)
    bias = None if bias_key is None else state_dict[bias_key].to(
        args.device, feats.dtype)

    def evaluate(new_weight, new_bias):
        metric = LongTailAccuracy(
            class_counts=train_counts, **shot_thresholds(cfg))
        scores = F.linear(feats, new_weight, new_bias).cpu()
        metric.process(None, [
            dict(gt_label=y.reshape(1), pred_score=s)
            for y, s in zip(labels, scores)
        ])
        return metric.evaluate(len(labels))

    rows = [dict(tau='original', **evaluate(weight, bias))]
    for tau in args.sweep:
        rows.append(
            dict(
                tau=tau,
                **evaluate(
                    *normalized_classifier(weight, bias, tau, args.bias))))
    swept = rows[1:]
    best = max(swept, key=lambda row: row['lt/macro'])['tau']
    absent = sorted(set(range(len(train_counts))) - set(labels.tolist()))
    return rows, best, len(labels), absent


def print_table(rows, num_images, absent, bias_mode):
    """Print the sweep: one line per tau, accuracies in percent."""
    keys = [
        k for k in ('lt/top1', 'lt/macro', 'lt/many', 'lt/medium', 'lt/few')
        if k in rows[0]
    ]
    print(f'\nHeld-out images: {num_images}' +
          (f' (no image of classes {absent}: left out of the means)'
           if absent else ''))
    print('tau      ' + ''.join(f'{k[3:]:>9}' for k in keys) +
          f'   (bias: {bias_mode} for the swept rows)')
    for row in rows:
        tau = row['tau']
        label = tau if isinstance(tau, str) else f'{tau:g}'
        print(f'{label:<9}' + ''.join(f'{row[k]:9.2f}' for k in keys))


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'tau_norm.py: error: {error}', file=sys.stderr)
        return 1


def run(args):
    """Sweep (optionally), rescale and write; return the exit status."""
    checkpoint, state_dict = load_checkpoint(args.checkpoint)
    weight_key, bias_key = classifier_keys(state_dict, args.weight_key,
                                           args.checkpoint)
    tau = args.tau
    if args.sweep is not None:
        cfg = Config.fromfile(args.config)
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        rows, best, num_images, absent = sweep(cfg, args, state_dict,
                                               weight_key, bias_key)
        print_table(rows, num_images, absent, args.bias)
        print(f'best tau (balanced accuracy on held-out images): {best:g}')
        if tau is None:
            tau = best

    weight = state_dict[weight_key]
    bias = None if bias_key is None else state_dict[bias_key]
    new_weight, new_bias = normalized_classifier(weight, bias, tau, args.bias)
    norms, new_norms = weight.norm(dim=1), new_weight.norm(dim=1)
    print(f'tau = {tau:g}: row norms {norms.min():.4g} .. {norms.max():.4g} '
          f'-> {new_norms.min():.4g} .. {new_norms.max():.4g}; bias '
          f'{"none" if bias is None else args.bias}')
    if args.out is None:
        return 0
    state_dict[weight_key] = new_weight
    if bias_key is not None:
        state_dict[bias_key] = new_bias
    if 'state_dict' in checkpoint:
        checkpoint.setdefault('meta', {})['tau_norm'] = dict(
            tau=float(tau),
            bias=args.bias,
            weight_key=weight_key,
            source=osp.abspath(args.checkpoint))
    torch.save(checkpoint, args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
