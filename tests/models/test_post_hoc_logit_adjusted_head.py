import numpy as np
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from helpers import REPO_ROOT
from etf_plugin.models.heads import PostHocLogitAdjustedHead

COUNTS = [90, 9, 1]  # prior 0.9, 0.09, 0.01


def head_with_identity_fc(**kwargs):
    """A head whose logits are its 3-d input features."""
    head = PostHocLogitAdjustedHead(num_classes=3, in_channels=3, **kwargs)
    with torch.no_grad():
        head.fc.weight.copy_(torch.eye(3))
        head.fc.bias.zero_()
    return head


LOGITS = torch.tensor([
    [2.0, 0.5, 0.0],  # plain: 0; adjusted 2.105, 2.908, 4.605 -> 2
    [5.0, 1.0, 0.0],  # plain: 0; adjusted 5.105, 3.408, 4.605 -> 0
    [1.0, 2.0, -1.0],  # plain: 1; adjusted 1.105, 4.408, 3.605 -> 1
    [0.0, 1.0, -1.5],  # plain: 1; adjusted 0.105, 3.408, 3.105 -> 1
    [0.0, 0.0, -2.0],  # plain: 0; adjusted 0.105, 2.408, 2.605 -> 2
])


def test_predictions_hand_computed():
    head = head_with_identity_fc(posthoc_tau=1.0, class_counts=COUNTS)
    samples = head.predict((LOGITS, ))
    labels = [int(s.pred_label) for s in samples]
    assert labels == [2, 0, 1, 1, 2]
    plain = [
        int(s.pred_label)
        for s in head_with_identity_fc(posthoc_tau=0.0).predict((LOGITS, ))
    ]
    assert plain == [0, 0, 1, 1, 0]
    # scores: softmax of logits - log(prior), by hand
    log_pi = [math.log(0.9), math.log(0.09), math.log(0.01)]
    for row, sample in zip(LOGITS.tolist(), samples):
        adjusted = [z - lp for z, lp in zip(row, log_pi)]
        total = sum(math.exp(a) for a in adjusted)
        assert sample.pred_score.tolist() == pytest.approx(
            [math.exp(a) / total for a in adjusted], abs=1e-6)
    # tau = 0.5: the first sample is 2.053, 1.704, 2.303 -> still 2;
    # the last is 0.053, 1.204, 0.303 -> 1
    half = head_with_identity_fc(posthoc_tau=0.5, class_counts=COUNTS)
    assert [int(s.pred_label)
            for s in half.predict((LOGITS, ))] == [2, 0, 1, 1, 1]


def test_training_path_and_state_dict_are_linear_cls_head():
    head = head_with_identity_fc(class_counts=COUNTS)
    linear = MODELS.build(
        dict(type='LinearClsHead', num_classes=3, in_channels=3))
    assert head.state_dict().keys() == linear.state_dict().keys()
    linear.load_state_dict(head.state_dict(), strict=True)
    head.load_state_dict(linear.state_dict(), strict=True)
    # mode='tensor' and the loss see the raw logits
    assert torch.equal(head((LOGITS, )), linear((LOGITS, )))
    targets = [DataSample().set_gt_label(i % 3) for i in range(5)]
    assert torch.equal(
        head.loss((LOGITS, ), targets)['loss'],
        linear.loss((LOGITS, ), targets)['loss'])


def test_cfg_options_swap_on_a_trained_ce_model(tmp_path):
    # What tools/test.py --cfg-options model.head.type=... does to the CE
    # config: the checkpoint of the CE model loads strictly, predictions move.
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_ce.py'))
    path = tmp_path / 'counts.txt'
    path.write_text('\n'.join(
        str(c) for c in [124, 50, 20, 8, 4, 2, 1, 1, 1, 1]))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ce = MODELS.build(cfg.model)
        ce.init_weights()
        cfg.merge_from_dict({
            'model.head.type': 'PostHocLogitAdjustedHead',
            'model.head.posthoc_tau': 1.0,
            'model.head.counts_file': str(path)
        })
        adjusted = MODELS.build(cfg.model)
    adjusted.load_state_dict(ce.state_dict(), strict=True)
    ce.eval(), adjusted.eval()
    inputs = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        logits = ce(inputs, mode='tensor')
        ce_out = ce(inputs, mode='predict')
        la_out = adjusted(inputs, mode='predict')
    log_pi = torch.log(torch.tensor([124, 50, 20, 8, 4, 2, 1, 1, 1, 1.]) / 212)
    expected = (logits - log_pi).argmax(1)
    assert [int(s.pred_label) for s in la_out] == expected.tolist()
    assert [int(s.pred_label) for s in ce_out] == logits.argmax(1).tolist()


def test_counts_handed_over_at_run_time():
    head = head_with_identity_fc()
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        head.predict((LOGITS, ))
    head.set_class_counts(np.array([90, 9, 1]))
    labels = [int(s.pred_label) for s in head.predict((LOGITS, ))]
    assert labels == [2, 0, 1, 1, 2]


def test_bad_counts():
    with pytest.raises(ValueError, match='class 1 has 0'):
        head_with_identity_fc(class_counts=[5, 0, 2])
    with pytest.raises(ValueError, match='2 entries but the model has 3'):
        head_with_identity_fc(class_counts=[5, 2])
    with pytest.raises(ValueError, match='2 entries but the model has 3'):
        head_with_identity_fc().set_class_counts(np.array([5, 2]))
    head_with_identity_fc(posthoc_tau=0.0).predict((LOGITS, ))  # no counts


@pytest.mark.parametrize('plain_type', ['ETFHead', 'CosineClsHead'])
def test_normalised_heads_adjust_their_scaled_cosines(plain_type):
    """The ETF and cosine variants: the plain head's parameters and
    training path, predictions from ``logit_scale * cos - tau log(pi)``."""
    torch.manual_seed(0)
    kwargs = dict(num_classes=3, in_channels=8)
    plain = MODELS.build(dict(type=plain_type, **kwargs))
    adjusted = MODELS.build(dict(type=f'PostHocLogitAdjusted{plain_type}',
                                 posthoc_tau=1.0, class_counts=COUNTS,
                                 **kwargs))
    assert adjusted.state_dict().keys() == plain.state_dict().keys()
    adjusted.load_state_dict(plain.state_dict(), strict=True)
    plain.eval(), adjusted.eval()
    feats = (torch.randn(64, 8), )
    logits = plain(feats)
    assert torch.equal(adjusted(feats), logits)  # mode='tensor': raw
    prior = torch.tensor(COUNTS, dtype=torch.float32) / sum(COUNTS)
    expected = (logits - prior.log()).argmax(1)
    got = torch.tensor([int(s.pred_label) for s in adjusted.predict(feats)])
    assert torch.equal(got, expected)
    assert not torch.equal(expected, logits.argmax(1))  # it moved some
    adjusted.posthoc_tau = 0.0
    assert [int(s.pred_label) for s in adjusted.predict(feats)] == \
        [int(s.pred_label) for s in plain.predict(feats)]
