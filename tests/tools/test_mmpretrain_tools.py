"""MMPretrain's own packaged tools (site-packages mmpretrain/.mim/tools) and
`mim train/test mmpretrain` on our digits config and its checkpoint,
unchanged: custom_imports + default_scope do all the wiring.

One short training (2 epochs, through `mim train mmpretrain`, which runs
MMPretrain's tools/train.py) and one `mim test mmpretrain` run (MMPretrain's
tools/test.py, dumping predictions) feed the log and checkpoint tools.
"""
import os
import os.path as osp
import re
import sys

import pytest

from helpers import MMPRETRAIN_TOOLS, REPO_ROOT, final_metrics, run_tool

DIGITS_ETF = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')
EPOCHS = 2


def tool(*path):
    return osp.join(MMPRETRAIN_TOOLS, *path)


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
    """`mim train mmpretrain` then `mim test mmpretrain --out ... --out-item
    pred` on the digits ETF config."""
    pytest.importorskip('mim', reason='openmim is in the tests extra: '
                        'pip install -e .[tests]')
    work = tmp_path_factory.mktemp('digits_run')
    train = run_tool([
        sys.executable, '-m', 'mim', 'train', 'mmpretrain', DIGITS_ETF,
        '--work-dir', str(work), '--cfg-options',
        f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1'
    ], cwd=work)
    checkpoint = work / f'epoch_{EPOCHS}.pth'
    assert checkpoint.is_file(), train[-3000:]
    predictions = work / 'predictions.pkl'
    test = run_tool([
        sys.executable, '-m', 'mim', 'test', 'mmpretrain', DIGITS_ETF,
        '--checkpoint',
        str(checkpoint), '--work-dir',
        str(work / 'test'), '--out',
        str(predictions), '--out-item', 'pred'
    ], cwd=work)
    return dict(
        work=work,
        checkpoint=checkpoint,
        predictions=predictions,
        train=train,
        test=test)


@pytest.mark.slow
def test_mim_train_and_test_mmpretrain(digits_run):
    val = final_metrics(digits_run['train'], 'val')
    test = final_metrics(digits_run['test'], 'test')
    assert {'accuracy/top1', 'lt/many', 'lt/few'} <= set(val)
    # the checkpoint reproduces the last validation of its training
    assert test == val
    assert digits_run['predictions'].is_file()


@pytest.mark.slow
def test_eval_metric_long_tail_accuracy(digits_run, tmp_path):
    """eval_metric.py on the dumped predictions, as docs/ecosystem.md says:
    the metric by its import path (the tool imports no plugin), the training
    counts from the checkpoint (no ClassCountsHook runs there)."""
    counts_file = tmp_path / 'class_counts.txt'
    # what the one-liner of docs/ecosystem.md prints, here in-process:
    # python -c "import sys, torch, etf_plugin; print(*torch.load(sys.argv[1],
    #     map_location='cpu')['meta']['class_counts'], sep='\\n')" CKPT
    import torch

    import etf_plugin  # noqa: F401  (allow-lists mmengine's checkpoint types)
    counts = '\n'.join(
        str(c) for c in torch.load(
            digits_run['checkpoint'], map_location='cpu')['meta']
        ['class_counts']) + '\n'
    counts_file.write_text(counts)
    out = run_tool([
        sys.executable,
        tool('analysis_tools', 'eval_metric.py'),
        str(digits_run['predictions']), '--metric',
        'type=etf_plugin.evaluation.LongTailAccuracy',
        f'counts_file={counts_file}', 'many_thr=50', 'few_thr=10',
        '--metric', 'type=Accuracy'
    ], cwd=tmp_path)
    offline = {
        k: float(v)
        for k, v in re.findall(r"'((?:accuracy|lt)/\w+)': ([\d.]+)", out)
    }
    online = final_metrics(digits_run['test'], 'test')
    assert set(offline) == set(online), out[-2000:]
    for key, value in online.items():
        assert offline[key] == pytest.approx(value, abs=1e-3), key


@pytest.mark.slow
def test_analyze_logs_cal_train_time(digits_run):
    """cal_train_time drops each epoch's first log record as an outlier: the
    digits configs must log more than once per epoch, or it prints nan."""
    logs = list(digits_run['work'].glob('*/vis_data/scalars.json'))
    assert len(logs) == 1
    out = run_tool([
        sys.executable,
        tool('analysis_tools', 'analyze_logs.py'), 'cal_train_time',
        str(logs[0])
    ], cwd=digits_run['work'])
    assert 'nan' not in out, out
    assert re.search(r'slowest epoch \d+, average time is \d', out), out


@pytest.mark.slow
def test_browse_dataset_train_phase(tmp_path):
    """Default mode ('transformed'); the train phase goes through
    LongTailDataset's pipeline property."""
    out = run_tool([
        sys.executable,
        tool('visualization', 'browse_dataset.py'), DIGITS_ETF, '--phase',
        'train', '--output-dir',
        str(tmp_path / 'browse'), '--not-show', '--show-number', '3'
    ], cwd=tmp_path)
    written = sorted(os.listdir(tmp_path / 'browse'))
    assert len(written) == 3, out[-3000:]


@pytest.mark.slow
def test_get_flops(tmp_path):
    """get_flops.py always feeds (3, H, W) tensors past the data pipeline:
    the 1-channel digits model refuses them with the fix in the message
    (turning colour to grey is the pipeline's job), and mmengine's counter
    on a (1, 8, 8) input gives its cost."""
    out = run_tool([
        sys.executable,
        tool('analysis_tools', 'get_flops.py'), DIGITS_ETF, '--shape', '8',
        '8'
    ], cwd=tmp_path, expect_rc=1)
    assert 'CifarResNet(in_channels=1) got input of shape (1, 3, 8, 8)' in out
    assert 'RandomGrayscale(prob=1.0, keep_channels=False)' in out
    out = run_tool([
        sys.executable, '-c',
        'from mmengine.analysis import get_model_complexity_info\n'
        'from mmpretrain import get_model\n'
        f'model = get_model({DIGITS_ETF!r})\n'
        'model.eval()\n'
        'model.forward = model.extract_feat\n'
        'info = get_model_complexity_info(model, (1, 8, 8))\n'
        'print("Flops:", info["flops_str"], "Params:", info["params_str"])'
    ], cwd=tmp_path)
    assert re.search(r'Flops: 4\.32\dM', out), out[-3000:]
    assert re.search(r'Params: 0\.463M', out), out[-3000:]
