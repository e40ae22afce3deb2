"""ETFObjectnessLoss: objectness BCE on every RoI + DR on the positives, and
the scores mmdet's test path gets from it."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import etf_plugin.det  # noqa: F401  (registers the mmdet components)
from etf_plugin.det import ETFObjectnessLoss, ETFObjectnessPredictor
from etf_plugin.functional import dot_regression_loss


def scores(num_rois=8, num_classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cosines = torch.rand(num_rois, num_classes, generator=generator) * 2 - 1
    objectness = torch.randn(num_rois, 1, generator=generator) * 2
    return torch.cat([cosines, objectness], 1).requires_grad_()


def test_terms_match_their_formulas():
    cls_score = scores()
    labels = torch.tensor([0, 4, 3, 4, 4, 1, 4, 1])  # 4 = background
    weights = torch.tensor([1., 1., 2., 0., 1., 1., 1., 1.])
    loss = ETFObjectnessLoss(loss_weight=2.0, dr_weight=3.0)
    out = loss(cls_score, labels, weights, avg_factor=7.0)
    assert set(out) == {'loss_cls_objectness', 'loss_cls_classes'}

    is_object = labels < 4
    bce = -(is_object * F.logsigmoid(cls_score[:, 4]) +
            ~is_object * F.logsigmoid(-cls_score[:, 4]))
    torch.testing.assert_close(out['loss_cls_objectness'],
                               2.0 * (weights * bce).sum() / 7.0)
    # DR on the positives only, 1/2 (cos_y - 1)^2, over the same avg_factor
    pos = is_object.nonzero()[:, 0]
    dr = 0.5 * (cls_score[pos, labels[pos]] - 1)**2 * weights[pos]
    torch.testing.assert_close(out['loss_cls_classes'],
                               2.0 * 3.0 * dr.sum() / 7.0)
    # which is the package's one DR formula
    torch.testing.assert_close(
        out['loss_cls_classes'],
        6.0 * (dot_regression_loss(cls_score[pos, :4], labels[pos]) *
               weights[pos]).sum() / 7.0)
    # without avg_factor both terms are means over all sampled RoIs
    plain = ETFObjectnessLoss()(cls_score, labels, weights)
    torch.testing.assert_close(plain['loss_cls_classes'], dr.sum() / 8)


def test_background_rois_never_pull_on_the_etf():
    cls_score = scores()
    labels = torch.tensor([0, 4, 3, 4, 4, 1, 4, 1])
    out = ETFObjectnessLoss()(cls_score, labels)
    grad, = torch.autograd.grad(out['loss_cls_classes'], cls_score)
    negatives = labels == 4
    assert grad[negatives].abs().sum() == 0
    # positives: only their own class's cosine is regressed (no push)
    pos_grad = grad[~negatives, :4]
    own = F.one_hot(labels[~negatives], 4).bool()
    assert pos_grad[~own].abs().sum() == 0 and pos_grad[own].abs().min() > 0
    assert grad[:, 4].abs().sum() == 0  # objectness is the other term's
    grad, = torch.autograd.grad(out['loss_cls_objectness'], cls_score)
    assert grad[:, :4].abs().sum() == 0 and grad[:, 4].abs().min() > 0


def test_class_balancing_is_among_positives():
    cls_score = scores(num_rois=6)
    labels = torch.tensor([0, 0, 0, 1, 4, 4])
    out = ETFObjectnessLoss(class_balanced=True)(cls_score, labels)
    dr = 0.5 * (cls_score[torch.arange(4), labels[:4]] - 1)**2
    # 4 positives, 2 classes present: gamma = 2; class 0 weighs 2/3 per
    # RoI, class 1 weighs 2; the background is not a class here
    expected = (2 / 3 * dr[:3].sum() + 2 * dr[3]) / 6
    torch.testing.assert_close(out['loss_cls_classes'], expected)


def test_no_positive_rois():
    cls_score = scores()
    out = ETFObjectnessLoss(class_balanced=True)(cls_score,
                                                 torch.full((8, ), 4))
    assert out['loss_cls_classes'] == 0
    out['loss_cls_classes'].backward()  # still part of the graph
    assert out['loss_cls_objectness'] > 0


def test_reduction_none_is_the_per_roi_total_for_ohem():
    cls_score = scores()
    labels = torch.tensor([0, 4, 3, 4, 4, 1, 4, 1])
    loss = ETFObjectnessLoss(loss_weight=2.0)
    per_roi = loss(cls_score, labels, reduction_override='none')['loss_cls']
    assert per_roi.shape == (8, )
    total = loss(cls_score, labels, reduction_override='sum')
    torch.testing.assert_close(per_roi.sum(), sum(total.values()))
    # a negative RoI's loss is its objectness term alone
    torch.testing.assert_close(per_roi[1],
                               -2.0 * F.logsigmoid(-cls_score[1, 4]))


def test_labels_beyond_the_head_name_the_fix():
    loss = ETFObjectnessLoss()
    # an asynchronous check (no host read): a RuntimeError on the CPU
    with pytest.raises(RuntimeError, match=r'RoI labels outside \[0, 4\].*'
                       r'model.roi_head.bbox_head.num_classes'):
        loss(scores(), torch.tensor([0, 1, 2, 3, 4, 6, 4, 4]))
    with pytest.raises(ValueError, match='expects \\(N, K \\+ 1\\) scores'):
        loss(torch.randn(3, 2), torch.zeros(3, dtype=torch.long))


def test_bad_options():
    with pytest.raises(ValueError, match='logit_scale'):
        ETFObjectnessLoss(logit_scale=0)
    with pytest.raises(ValueError, match='dr_weight'):
        ETFObjectnessLoss(dr_weight=-1)
    with pytest.raises(ValueError, match='reduction'):
        ETFObjectnessLoss(reduction='avg')


def test_scores_are_objectness_times_class_softmax():
    loss = ETFObjectnessLoss(logit_scale=7.0)
    assert loss.get_cls_channels(1203) == 1204
    cls_score = scores().detach()
    probs = loss.get_activation(cls_score)
    assert probs.shape == (8, 5)
    torch.testing.assert_close(probs.sum(1), torch.ones(8))
    p = torch.sigmoid(cls_score[:, 4:])
    torch.testing.assert_close(probs[:, 4:], 1 - p)
    torch.testing.assert_close(probs[:, :4],
                               p * torch.softmax(7.0 * cls_score[:, :4], 1))


def test_scores_calibrated_for_lvis():
    # LVIS: 1203 classes, score_thr=0.0001
    loss = ETFObjectnessLoss()  # logit_scale 10
    predictor = ETFObjectnessPredictor(in_features=1202, out_features=1204,
                                       with_bn=False)
    with torch.no_grad():
        predictor.objectness.weight.zero_()
        predictor.objectness.bias.fill_(math.log(99))  # p(object) = 0.99
        cls_score = predictor(predictor.etf_vectors[:50])
    probs = loss.get_activation(cls_score)
    # a confident object on its class's vertex keeps about 0.95 of its
    # objectness (1 / (1 + 1202 e^(-10 * 1203/1202)))
    own = probs[torch.arange(50), torch.arange(50)]
    torch.testing.assert_close(own, torch.full((50, ), 0.99 * 0.9481),
                               atol=1e-3, rtol=0)
    # and no other class of it passes score_thr
    others = probs[:, :-1].clone()
    others[torch.arange(50), torch.arange(50)] = 0
    assert others.max() < 1e-4


def test_accuracy():
    loss = ETFObjectnessLoss()
    cls_score = torch.tensor([
        [0.9, 0.1, 0.0, 3.0],  # object, class 0: right, right
        [0.2, 0.1, 0.8, 2.0],  # object, label 0: objectness right only
        [0.1, 0.7, 0.3, -1.0],  # background: right
        [0.6, 0.2, 0.5, 1.0],  # background called an object: wrong
    ])
    acc = loss.get_accuracy(cls_score, torch.tensor([0, 0, 3, 3]))
    assert set(acc) == {'acc', 'acc_objectness', 'acc_classes'}
    torch.testing.assert_close(acc['acc_objectness'], torch.tensor([75.0]))
    torch.testing.assert_close(acc['acc_classes'], torch.tensor([50.0]))
    torch.testing.assert_close(acc['acc'], torch.tensor([50.0]))


def test_bbox_head_loss_and_test_path():
    num_classes = 3
    head = MODELS.build(
        dict(
            type='ETFBBoxHead',
            in_channels=8,
            fc_out_channels=16,
            roi_feat_size=7,
            num_classes=num_classes,
            logit_scale=12.0,
            dr_weight=1.0,
            class_balanced=False))
    head.init_weights()
    assert head.custom_cls_channels and head.custom_activation
    assert head.fc_cls.out_features == num_classes + 1
    rois = torch.tensor([[0., 0., 0., 20., 20.], [0., 5., 5., 40., 30.],
                         [0., 10., 0., 30., 50.], [0., 1., 2., 60., 60.]])
    cls_score, bbox_pred = head(torch.randn(4, 8, 7, 7))
    labels = torch.tensor([1, 3, 0, 3])  # 3 = background
    losses = head.loss(cls_score, bbox_pred, rois, labels, torch.ones(4),
                       torch.zeros(4, 4), torch.zeros(4, 4))
    # mmdet divides by the sampled RoIs (avg_factor 4)
    dr = 0.5 * (cls_score[[0, 2], [1, 0]] - 1)**2
    torch.testing.assert_close(losses['loss_cls_classes'], dr.sum() / 4)
    assert {'acc', 'acc_objectness', 'acc_classes'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert head.shared_fcs[0].weight.grad.abs().sum() > 0
    assert head.fc_cls.objectness.weight.grad.abs().sum() > 0

    # without a test_cfg mmdet returns the scores it would pass to NMS
    raw = head._predict_by_feat_single(
        rois, cls_score, bbox_pred, img_meta=dict(img_shape=(64, 64)),
        rescale=False, rcnn_test_cfg=None)
    torch.testing.assert_close(raw.scores,
                               head.loss_cls.get_activation(cls_score))
    # with one, score_thr applies to p(object) * p(class | object)
    from mmengine.config import ConfigDict
    results = head._predict_by_feat_single(
        rois, cls_score, bbox_pred, img_meta=dict(img_shape=(64, 64)),
        rescale=False,
        rcnn_test_cfg=ConfigDict(score_thr=0.2, nms=dict(
            type='nms', iou_threshold=0.99), max_per_img=100))
    kept = raw.scores[:, :-1][raw.scores[:, :-1] > 0.2]
    assert sorted(results.scores.tolist()) == pytest.approx(
        sorted(kept.tolist()))
