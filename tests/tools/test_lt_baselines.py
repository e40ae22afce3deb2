import argparse
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from conftest import REPO_ROOT, load_tool


TOOL = 'tools/analysis/lt_baselines.py'


def parse_cfg_options(strings):
    """What tools/train.py does with --cfg-options."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *strings]).cfg_options


def long_tail_datasets(node):
    if isinstance(node, dict):
        found = [node] if node.get('type') == 'LongTailDataset' else []
        return found + sum((long_tail_datasets(v) for v in node.values()), [])
    if isinstance(node, (list, tuple)):
        return sum((long_tail_datasets(v) for v in node), [])
    return []


@pytest.mark.parametrize('name, copies', [('ce', 3), ('la', 4),
                                          ('posthoc_la', 4), ('crt', 3)])
def test_overrides_reach_every_copy_of_the_training_set(name, copies):
    tool = load_tool(TOOL)
    path = osp.join(REPO_ROOT, tool.CONFIGS[name])
    cfg = Config.fromfile(path)
    assert len(long_tail_datasets(cfg.to_dict())) == copies
    options = tool.long_tail_overrides(cfg, imbalance_ratio=0.02, seed=3)
    # through the command line, as tools/train.py receives them
    cfg.merge_from_dict(parse_cfg_options(tool.as_cli(options)))
    datasets = long_tail_datasets(cfg.to_dict())
    assert len(datasets) == copies
    for dataset in datasets:
        assert dataset['imbalance_ratio'] == 0.02
        assert dataset['seed'] == 3
    assert cfg.randomness.seed == 3


def test_commands():
    tool = load_tool(TOOL)
    commands = {
        b: tool.baseline_commands(b, 0.05, 2, 'runs')
        for b in tool.BASELINES
    }
    ce_checkpoint = osp.join('runs', 'ce_r0.05_s2', 'epoch_60.pth')
    for baseline, steps in commands.items():
        test = steps[-1]
        assert test[1] == 'tools/test.py'
        assert test[test.index('--out') + 1] == osp.join(
            'runs', f'{baseline}_r0.05_s2', 'test_metrics.pkl')
        assert 'train_dataloader.dataset.imbalance_ratio=0.05' in test
    assert commands['posthoc_la'][0][2:4] == [
        'configs/resnet32_digitslt_posthoc_la.py', ce_checkpoint
    ]
    assert f'load_from={ce_checkpoint}' in commands['crt'][0]
    assert commands['crt'][1][3] == osp.join('runs', 'crt_r0.05_s2',
                                             'epoch_10.pth')
    tau_norm = commands['tau_norm'][0]
    assert tau_norm[1] == 'tools/analysis/tau_norm.py'
    assert '--val-from-train' in tau_norm and ce_checkpoint in tau_norm
    assert commands['tau_norm'][1][3] == tau_norm[tau_norm.index('--out') + 1]
    with pytest.raises(ValueError, match='Unknown baseline'):
        tool.baseline_commands('focal', 0.05, 2, 'runs')


def test_table():
    tool = load_tool(TOOL)
    table = tool.format_table({
        'ce': {
            'accuracy/top1': 78.0,
            'lt/many': 99.0,
            'lt/few': 58.0
        },
    })
    assert table.splitlines()[2] == '| ce | 78.0 | 99.0 | - | 58.0 |'
