"""DetDotRegressionLoss: the DR loss as an mmdet bbox head's ``loss_cls``."""
import pytest
import torch
from mmdet.registry import MODELS
from mmpretrain.registry import MODELS as PRETRAIN_MODELS

import etf_plugin  # noqa: F401  (registers the mmdet components)
from etf_plugin.functional import dot_regression_loss
from etf_plugin.det import DetDotRegressionLoss, ETFPredictor
from etf_plugin.models.losses import DotRegressionLoss


def test_registered_under_the_same_name_in_both_toolboxes():
    det_loss = MODELS.build(dict(type='DotRegressionLoss'))
    assert type(det_loss) is DetDotRegressionLoss
    assert isinstance(det_loss, DotRegressionLoss)
    # the scope, not the registry object, decides what is built
    assert type(PRETRAIN_MODELS.build(
        dict(type='DotRegressionLoss',
             _scope_='mmpretrain'))) is DotRegressionLoss
    with pytest.raises(ValueError, match='logit_scale'):
        DetDotRegressionLoss(logit_scale=0)


def test_mmdet_weight_avg_factor_and_reduction_conventions():
    torch.manual_seed(0)
    cos = torch.rand(6, 5) * 2 - 1
    labels = torch.tensor([0, 3, 4, 4, 1, 4])  # 4 = background
    weight = torch.tensor([1., 1., 1., 0., 2., 1.])
    loss = DetDotRegressionLoss(loss_weight=2.0)
    per_roi = loss(cos, labels, weight, reduction_override='none')
    # negatives are regressed onto the background vertex like any class
    expected = 0.5 * (cos[torch.arange(6), labels] - 1)**2 * weight
    torch.testing.assert_close(per_roi, 2.0 * expected)
    torch.testing.assert_close(
        loss(cos, labels, weight, avg_factor=5.0),
        2.0 * expected.sum() / 5.0)
    torch.testing.assert_close(
        loss(cos, labels, weight, avg_factor=5.0),
        2.0 * (dot_regression_loss(cos, labels) * weight).sum() / 5.)
    # labels are checked on a loss's first batch
    with pytest.raises(ValueError, match='outside'):
        DetDotRegressionLoss()(cos, torch.tensor([0, 1, 2, 3, 4, 5]), weight)


def test_activation_is_a_scaled_softmax_calibrated_for_lvis():
    loss = DetDotRegressionLoss()  # default logit_scale
    assert loss.get_cls_channels(1203) == 1204
    cos = torch.rand(4, 7) * 2 - 1
    torch.testing.assert_close(
        loss.get_activation(cos), torch.softmax(loss.logit_scale * cos, 1))
    # LVIS: 1203 classes + background, test_cfg score_thr=0.0001
    predictor = ETFPredictor(in_features=1203, out_features=1204)
    probs = loss.get_activation(predictor(predictor.etf_vectors))
    own = probs.diagonal()
    assert own.min() > 0.9  # a RoI on its class's vertex
    background_roi = probs[-1, :-1]  # a RoI on the background vertex
    assert background_roi.max() < 1e-4


def test_accuracy_is_mmdets_acc_over_sampled_rois():
    loss = DetDotRegressionLoss()
    cos = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.8], [0.1, 0.7, 0.3],
                        [0.6, 0.2, 0.5]])
    acc = loss.get_accuracy(cos, torch.tensor([0, 2, 2, 0]))
    assert set(acc) == {'acc'}
    torch.testing.assert_close(acc['acc'], torch.tensor([75.0]))


def test_bbox_head_uses_it_for_loss_accuracy_and_scores():
    num_classes = 3
    head = MODELS.build(
        dict(
            type='Shared2FCBBoxHead',
            in_channels=8,
            fc_out_channels=16,
            roi_feat_size=7,
            num_classes=num_classes,
            cls_predictor_cfg=dict(type='ETFPredictor', with_bn=True),
            loss_cls=dict(type='DotRegressionLoss', logit_scale=12.0)))
    head.init_weights()
    assert head.custom_cls_channels and head.custom_activation
    rois = torch.tensor([[0., 0., 0., 20., 20.], [0., 5., 5., 40., 30.],
                         [0., 10., 0., 30., 50.], [0., 1., 2., 60., 60.]])
    cls_score, bbox_pred = head(torch.randn(4, 8, 7, 7))
    labels = torch.tensor([1, 3, 0, 3])  # 3 = background
    label_weights = torch.ones(4)
    losses = head.loss(cls_score, bbox_pred, rois, labels, label_weights,
                       torch.zeros(4, 4), torch.zeros(4, 4))
    expected = 0.5 * (cls_score[torch.arange(4), labels] - 1)**2
    torch.testing.assert_close(losses['loss_cls'], expected.mean())
    assert 0 <= losses['acc'].item() <= 100
    losses['loss_cls'].backward()
    assert head.shared_fcs[0].weight.grad.abs().sum() > 0

    # without a test_cfg mmdet returns the scores it would pass to NMS
    results = head._predict_by_feat_single(
        rois,
        cls_score,
        bbox_pred,
        img_meta=dict(img_shape=(64, 64)),
        rescale=False,
        rcnn_test_cfg=None)
    # softmax(12 * cos) from get_activation, not a softmax of raw cosines
    torch.testing.assert_close(results.scores,
                               torch.softmax(12.0 * cls_score, dim=1))
