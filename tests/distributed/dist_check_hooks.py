"""Test-only hooks for tests/distributed: they record what each rank sees, or break
one rank on request, so the tests can check the distributed behaviour of the
real tools from the outside. Imported by dist_check_config.py."""
import json
import os
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from etf_plugin.engine.hooks import NeuralCollapseHook

# Environment variables read by the hooks below.
FAIL_RANK = 'ETF_TEST_FAIL_RANK'
PERTURB_RANK = 'ETF_TEST_PERTURB_ETF_RANK'


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class RecordRankStateHook(Hook):
    """Write ``rank_state/<stage>_rank<r>.json`` in the work dir: the
    long-tail subset and sampler shard of the training set, the learning
    rate, the ETF and the normalisation layers this rank uses."""

    def before_train(self, runner):
        dataset = runner.train_dataloader.dataset
        self._write(
            runner, 'train',
            subset=[
                dataset._get_ori_dataset_idx(i) for i in range(len(dataset))
            ],
            subset_labels=dataset.get_gt_labels().tolist(),
            shard=list(iter(runner.train_dataloader.sampler)),
            lr=runner.optim_wrapper.get_lr()['lr'][0])

    def before_test(self, runner):
        self._write(runner, 'test')

    def _write(self, runner, stage, **state):
        model = _unwrap(runner.model)
        state.update(
            etf=model.head.etf_vectors.tolist(),
            norm_layers=sorted({
                type(m).__name__
                for m in model.modules() if 'Norm' in type(m).__name__
            }))
        out_dir = osp.join(runner.work_dir, 'rank_state')
        os.makedirs(out_dir, exist_ok=True)
        with open(osp.join(out_dir, f'{stage}_rank{get_rank()}.json'),
                  'w') as f:
            json.dump(state, f)


@HOOKS.register_module()
class FailOnRankHook(Hook):
    """Raise after the second training iteration on rank
    ``$ETF_TEST_FAIL_RANK`` (no-op when it is unset), while the other ranks
    go on into the next gradient all-reduce."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if batch_idx == 1 and os.environ.get(FAIL_RANK) == str(get_rank()):
            raise RuntimeError(f'injected failure on rank {get_rank()}')


@HOOKS.register_module()
class PerturbETFOnRankHook(Hook):
    """Move one ETF entry by one float ulp on rank
    ``$ETF_TEST_PERTURB_ETF_RANK`` before testing (no-op when unset), before
    RankConsistencyHook looks."""

    priority = 'HIGHEST'

    def before_test(self, runner):
        if os.environ.get(PERTURB_RANK) == str(get_rank()):
            etf = _unwrap(runner.model).head.etf_vectors
            etf[0, 0] = torch.nextafter(etf[0, 0], torch.tensor(2.0))


@HOOKS.register_module()
class NeuralCollapseAtTestHook(Hook):
    """Run NeuralCollapseHook's measurement once, at the end of testing, so
    that a checkpoint's NC metrics can be compared between 1 and 2
    processes.

    Args:
        **kwargs: Arguments of ``NeuralCollapseHook``.
    """

    def __init__(self, **kwargs):
        self.nc_hook = NeuralCollapseHook(**kwargs)

    def set_class_counts(self, counts):
        # ClassCountsHook hands the checkpoint's counts to the hooks it finds
        self.nc_hook.set_class_counts(counts)

    def after_test_epoch(self, runner, metrics=None):
        self.nc_hook.measure(runner, epoch=0)
