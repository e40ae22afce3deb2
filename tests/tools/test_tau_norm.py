import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS, MODELS

from conftest import REPO_ROOT, load_tool
from etf_plugin.datasets import read_gt_labels

CE_CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_ce.py')
ETF_CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')


TOOL = 'tools/analysis/tau_norm.py'


def build(config):
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return model


@pytest.fixture
def ce_checkpoint(tmp_path):
    """An mmengine-style checkpoint whose classifier rows have norms
    1 ... 10 and a nonzero bias."""
    model = build(CE_CONFIG)
    state_dict = model.state_dict()
    weight = state_dict['head.fc.weight']
    scale = torch.arange(1, 11, dtype=weight.dtype)[:, None]
    state_dict['head.fc.weight'] = weight / weight.norm(
        dim=1, keepdim=True) * scale
    state_dict['head.fc.bias'] = torch.linspace(-1, 1, 10)
    path = tmp_path / 'ce.pth'
    torch.save(
        dict(
            meta=dict(epoch=60, seed=0),
            state_dict=state_dict,
            optimizer=dict(state={}, param_groups=[])), path)
    return path, state_dict


def test_round_trip(ce_checkpoint, tmp_path, capsys):
    path, state_dict = ce_checkpoint
    out = tmp_path / 'tau.pth'
    assert load_tool(TOOL).main(
        [CE_CONFIG, str(path), '--tau', '0.5', '--out',
         str(out)]) == 0
    assert 'tau = 0.5' in capsys.readouterr().out
    new = torch.load(out, weights_only=True)  # etf_plugin is imported
    assert set(new) == {'meta', 'state_dict', 'optimizer'}
    assert new['meta']['epoch'] == 60
    assert new['meta']['tau_norm']['tau'] == 0.5
    new_sd = new['state_dict']
    assert set(new_sd) == set(state_dict)
    # row k had norm k + 1, now (k + 1) ** (1 - 0.5), same direction
    norms = new_sd['head.fc.weight'].norm(dim=1)
    assert torch.allclose(norms, torch.arange(1., 11.)**0.5)
    assert torch.allclose(
        torch.nn.functional.cosine_similarity(new_sd['head.fc.weight'],
                                              state_dict['head.fc.weight']),
        torch.ones(10))
    assert torch.equal(new_sd['head.fc.bias'], torch.zeros(10))
    for key in state_dict:
        if not key.startswith('head.fc.'):
            assert torch.equal(new_sd[key], state_dict[key]), key
    build(CE_CONFIG).load_state_dict(new_sd, strict=True)

    keep = tmp_path / 'keep.pth'
    assert load_tool(TOOL).main([
        CE_CONFIG,
        str(path), '--tau', '1', '--bias', 'keep', '--out',
        str(keep)
    ]) == 0
    kept = torch.load(keep, weights_only=True)['state_dict']
    assert torch.equal(kept['head.fc.bias'], state_dict['head.fc.bias'])
    assert torch.allclose(kept['head.fc.weight'].norm(dim=1), torch.ones(10))


def test_refuses_etf_checkpoint(tmp_path, capsys):
    path = tmp_path / 'etf.pth'
    torch.save(dict(meta={}, state_dict=build(ETF_CONFIG).state_dict()), path)
    out = tmp_path / 'out.pth'
    rc = load_tool(TOOL).main(
        [ETF_CONFIG, str(path), '--tau', '1', '--out',
         str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "no learnable classifier 'head.fc.weight'" in err
    assert 'head.etf_vectors' in err
    assert not out.exists()


def test_held_out_images_were_never_trained_on():
    tool = load_tool(TOOL)
    cfg = Config.fromfile(CE_CONFIG)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        held_out = tool.held_out_from_train(cfg, per_class=7, seed=0)
        long_tail = DATASETS.build(cfg.train_dataloader.dataset)
    kept = {long_tail._get_ori_dataset_idx(i) for i in range(len(long_tail))}
    assert not kept & set(held_out.indices)
    labels = read_gt_labels(held_out.dataset)[held_out.indices]
    per_class = np.bincount(labels, minlength=10)
    assert per_class.max() == 7 and per_class.sum() > 50
    # the test pipeline: no random crop
    assert 'RandomCrop' not in repr(held_out.dataset.pipeline)


def test_sweep_reports_and_picks_the_best(ce_checkpoint, tmp_path, capsys):
    path, state_dict = ce_checkpoint
    out = tmp_path / 'best.pth'
    assert load_tool(TOOL).main([
        CE_CONFIG,
        str(path), '--sweep', '0,0.5,1', '--val-from-train', '5', '--out',
        str(out)
    ]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('tau '))
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in lines[header + 1:header + 5]
    }
    assert set(rows) == {'original', '0', '0.5', '1'}
    macro = {
        tau: values[1]
        for tau, values in rows.items() if tau != 'original'
    }
    best = max(macro, key=macro.get)  # first best on ties, as the tool
    assert f'best tau (balanced accuracy on held-out images): {best}' in lines
    chosen = torch.load(out, weights_only=True)['meta']['tau_norm']['tau']
    assert chosen == float(best)


def test_refuses_to_tune_on_the_test_set(ce_checkpoint, capsys):
    path, _ = ce_checkpoint
    # the digits config's val_dataloader is its test set
    rc = load_tool(TOOL).main(
        [CE_CONFIG,
         str(path), '--sweep', '0,1', '--val-config', CE_CONFIG])
    assert rc == 1
    assert 'is the test set' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_tool(TOOL).main([CE_CONFIG, str(path)])  # neither --tau nor --sweep
    with pytest.raises(SystemExit):
        load_tool(TOOL).main([CE_CONFIG, str(path), '--sweep', '0,1'])
