"""Same seed, same backbone: two models that differ only in the head get
bit-identical backbone weights, whatever the head draws from the global
random generator when it is built (nn.Linear does, the ETF does not)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed
from mmpretrain.registry import MODELS

import etf_plugin  # noqa: F401
from helpers import REPO_ROOT

HEADS = {
    'LinearClsHead': 'resnet32_digitslt_ce.py',
    'ETFHead': 'resnet32_digitslt_etf.py',
}


def backbone_at_seed(config, seed):
    """The backbone's tensors after the Runner's order: seed, build the
    whole model, then ``init_weights``."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', config))
    set_random_seed(seed, deterministic=True)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.head.__class__.__name__, model.backbone.state_dict()


@pytest.mark.parametrize('seed', [0, 3])
def test_linear_and_etf_heads_get_the_same_backbone(seed):
    built = {config: backbone_at_seed(config, seed)
             for config in HEADS.values()}
    for head, config in HEADS.items():
        assert built[config][0] == head  # the configs differ in the head
    linear, etf = (built[c][1] for c in HEADS.values())
    assert linear.keys() == etf.keys()
    differing = [k for k in linear if not torch.equal(linear[k], etf[k])]
    assert not differing, f'{len(differing)} backbone tensors differ, ' \
        f'e.g. {differing[:3]}'
    # and the seed matters
    _, other = backbone_at_seed(HEADS['ETFHead'], seed + 1)
    assert not torch.equal(other['stem.0.weight'], etf['stem.0.weight'])
