"""RunSummaryHook: the last metrics (the leading ones first), the last
checkpoint and where the logs are, logged once at the end of a run."""
import logging
from types import SimpleNamespace

from etf_plugin.engine.hooks import RunSummaryHook


def summary(tmp_path, caplog, metrics, last_checkpoint=None):
    logger = logging.getLogger(f'test_run_summary_{tmp_path.name}')
    runner = SimpleNamespace(
        work_dir=str(tmp_path), log_dir=str(tmp_path / 'log'), logger=logger)
    if last_checkpoint is not None:
        (tmp_path / 'last_checkpoint').write_text(last_checkpoint + '\n')
    hook = RunSummaryHook()
    hook.after_val_epoch(runner, {'accuracy/top1': 1.0})  # superseded
    hook.after_test_epoch(runner, metrics)
    with caplog.at_level(logging.INFO, logger=logger.name):
        hook.after_run(runner)
    assert len(caplog.messages) == 1
    return caplog.messages[0].split('\n')


def test_leading_metrics_first_then_the_others_sorted(tmp_path, caplog):
    lines = summary(
        tmp_path, caplog, {
            'nc/nc1': 0.5, 'lt/few': 73.6, 'accuracy/top1': 86.0,
            'lt/many': 99.0, 'accuracy/top5': 99.8, 'lt/per_class': [1, 2]
        }, last_checkpoint=str(tmp_path / 'epoch_60.pth'))
    assert lines == [
        'Run summary:',
        '  final metrics: accuracy/top1 86.00, accuracy/top5 99.80, '
        'lt/many 99.00, lt/few 73.60, nc/nc1 0.50',
        f'  last checkpoint: {tmp_path / "epoch_60.pth"}',
        f'  logs: {tmp_path / "log"}',
        f'  scalars (TensorBoard, json): {tmp_path / "log" / "vis_data"}',
    ]


def test_no_metrics_and_no_checkpoint(tmp_path, caplog):
    lines = summary(tmp_path, caplog, None)
    assert lines[0] == 'Run summary:'
    assert not any('final metrics' in line or 'last checkpoint' in line
                   for line in lines)
