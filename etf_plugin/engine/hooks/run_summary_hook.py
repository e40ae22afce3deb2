"""``RunSummaryHook``: what a run produced, in a few lines at its end."""
import os.path as osp

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

# Shown first, in this order, when the evaluator reports them.
LEADING_METRICS = ('accuracy/top1', 'accuracy/top5', 'lt/many', 'lt/medium',
                   'lt/few', 'lt/macro')


@HOOKS.register_module()
class RunSummaryHook(Hook):
    """Log a short summary when training or testing ends: the final metrics
    (top-1 and the many/medium/few-shot accuracies first), where the last
    checkpoint is, and where the logs and TensorBoard events are.

    MMEngine's log ends with the last validation line among many, and the
    checkpoint and log locations are spread over the run's output.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._metrics = {}

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._metrics = dict(metrics or {})

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._metrics = dict(metrics or {})

    def after_run(self, runner) -> None:
        lines = ['Run summary:']
        if self._metrics:
            keys = [k for k in LEADING_METRICS if k in self._metrics]
            keys += sorted(k for k in self._metrics if k not in keys
                           and isinstance(self._metrics[k], (int, float)))
            lines.append('  final metrics: ' + ', '.join(
                f'{k} {self._metrics[k]:.2f}' for k in keys))
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.exists(last):
            with open(last) as f:
                lines.append(f'  last checkpoint: {f.read().strip()}')
        lines.append(f'  logs: {runner.log_dir}')
        lines.append(
            f'  scalars (TensorBoard, json): '
            f'{osp.join(runner.log_dir, "vis_data")}')
        runner.logger.info('\n'.join(lines))
