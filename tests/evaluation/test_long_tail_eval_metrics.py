"""LongTailCalibration, LabelShiftAccuracy and PerClassReport on hand-made
cases, against independent computations, and 2 processes against 1."""
import csv
import json
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator

from helpers import default_sampler_shard, free_port, init_gloo
from etf_plugin.evaluation import (LabelShiftAccuracy, LongTailAccuracy,
                                   LongTailCalibration, PerClassReport)


def samples(gt, scores):
    return [
        dict(gt_label=torch.tensor([y]), pred_score=torch.tensor(s))
        for y, s in zip(gt, scores)
    ]


def evaluate(metric, data_samples):
    for start in range(0, len(data_samples), 3):
        metric.process(None, data_samples[start:start + 3])
    return metric.evaluate(len(data_samples))


# Training counts [150, 50, 5]: class 0 many-shot, 1 medium, 2 few.
# 5 bins. Class 0: four samples at confidence 0.9, three right (bin
# (0.8, 1]: gap 0.15). Class 1: two at 0.5, both right (gap 0.5). Class 2:
# two at 0.35, both wrong (bin (0.2, 0.4]: gap 0.35). No confidence on a
# bin edge (float32 would move it across).
# ECE = (4 * 0.15 + 2 * 0.5 + 2 * 0.35) / 8 = 28.75 %, MCE = 50 %.
TRAIN_COUNTS = [150, 50, 5]
GT = [0, 0, 0, 0, 1, 1, 2, 2]
SCORES = [
    [0.9, 0.05, 0.05],
    [0.9, 0.05, 0.05],
    [0.9, 0.08, 0.02],
    [0.05, 0.9, 0.05],  # wrong
    [0.25, 0.5, 0.25],
    [0.2, 0.5, 0.3],
    [0.35, 0.325, 0.325],  # wrong
    [0.325, 0.35, 0.325],  # wrong
]


def test_calibration_hand_made():
    metric = LongTailCalibration(num_bins=5, class_counts=TRAIN_COUNTS)
    result = evaluate(metric, samples(GT, SCORES))
    assert result['calib/ece'] == pytest.approx(28.75, abs=1e-4)
    assert result['calib/mce'] == pytest.approx(50.0, abs=1e-4)
    # Groups: many = class 0 (gap 0.15 in one bin), medium = class 1 (0.5),
    # few = class 2 (0.35).
    assert result['calib/ece_many'] == pytest.approx(15.0, abs=1e-4)
    assert result['calib/ece_medium'] == pytest.approx(50.0, abs=1e-4)
    assert result['calib/ece_few'] == pytest.approx(35.0, abs=1e-4)
    assert result['calib/mce_few'] == pytest.approx(35.0, abs=1e-4)
    nll = -np.log(np.float32([0.9, 0.9, 0.9, 0.05, 0.5, 0.5, 0.325, 0.325]))
    assert result['calib/nll'] == pytest.approx(nll.mean())
    assert result['calib/nll_few'] == pytest.approx(nll[6:].mean())


def test_calibration_needs_scores():
    metric = LongTailCalibration(class_counts=TRAIN_COUNTS)
    with pytest.raises(ValueError, match='pred_score'):
        metric.process(None, [
            dict(gt_label=torch.tensor([0]), pred_label=torch.tensor([0]))
        ])


def random_case(seed=0, num=101, num_classes=7):
    generator = torch.Generator().manual_seed(seed)
    gt = torch.randint(num_classes, (num, ), generator=generator).tolist()
    scores = torch.randn(num, num_classes, generator=generator).mul(2)
    scores[torch.arange(num), torch.tensor(gt)] += 1.5
    counts = [300, 150, 90, 40, 19, 8, 2]
    return gt, scores.softmax(1).tolist(), counts


def test_label_shift_against_independent_computation():
    gt, scores, counts = random_case()
    metric = LabelShiftAccuracy(
        class_counts=counts, logit_adjust=True, plot=False)
    result = evaluate(metric, samples(gt, scores))
    gt, scores = np.array(gt), np.array(scores)
    order = np.argsort(-np.array(counts))
    ranks = np.empty(7)
    ranks[order] = np.arange(7)

    def expected(predicted, ratio):
        # The accuracy on a test set resampled to the prior, written as a
        # per-sample weighted mean: each sample of class k weighs p_k / m_k.
        prior = ratio**(-ranks / 6)
        prior /= prior.sum()
        weights = prior[gt] / np.bincount(gt, minlength=7)[gt]
        return 100 * np.sum(weights * (predicted == gt))

    train_log_prior = np.log(np.array(counts) / sum(counts))
    for ratio, name in [(50, 'forward_50'), (1, 'uniform'),
                        (1 / 10, 'backward_10')]:
        assert result[f'lt_shift/{name}'] == pytest.approx(
            expected(scores.argmax(1), ratio))
        prior = ratio**(-ranks / 6)
        adjusted = np.log(scores) + np.log(prior / prior.sum()) - \
            train_log_prior
        assert result[f'lt_shift/la_{name}'] == pytest.approx(
            expected(adjusted.argmax(1), ratio))
    # The adjustment helps where the test prior differs from training's.
    assert result['lt_shift/la_backward_50'] > result['lt_shift/backward_50']
    assert len(result) == 22
    macro = evaluate(LongTailAccuracy(class_counts=counts),
                     samples(gt.tolist(), scores.tolist()))['lt/macro']
    assert result['lt_shift/uniform'] == pytest.approx(macro)


def test_label_shift_adjust_from_uniform_and_label_only():
    gt, scores, counts = random_case()
    metric = LabelShiftAccuracy(
        ratios=(1, ), class_counts=counts, logit_adjust=True,
        adjust_from='uniform', plot=False)
    # Towards the uniform prior from the uniform prior: no change.
    result = evaluate(metric, samples(gt, scores))
    assert result['lt_shift/la_uniform'] == result['lt_shift/uniform']
    labels_only = [
        dict(gt_label=torch.tensor([y]), pred_label=torch.tensor([y]))
        for y in gt
    ]
    result = evaluate(
        LabelShiftAccuracy(class_counts=counts, plot=False), labels_only)
    assert result['lt_shift/forward_50'] == pytest.approx(100)
    with pytest.raises(ValueError, match='pred_score'):
        LabelShiftAccuracy(class_counts=counts, logit_adjust=True).process(
            None, labels_only)
    with pytest.raises(ValueError, match='distinct'):
        LabelShiftAccuracy(ratios=(2, 2))


def test_label_shift_figure_reaches_the_visualizer(tmp_path):
    from mmengine.visualization import Visualizer
    Visualizer.get_instance(
        'lt_shift_test', vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path))
    try:
        gt, scores, counts = random_case()
        evaluate(LabelShiftAccuracy(class_counts=counts, logit_adjust=True),
                 samples(gt, scores))
    finally:
        Visualizer._instance_dict.pop('lt_shift_test')
    images = list(tmp_path.rglob('lt_shift_*.png'))
    assert len(images) == 1


def test_per_class_report_files(tmp_path):
    metric = PerClassReport(str(tmp_path), class_counts=TRAIN_COUNTS)
    metric.dataset_meta = dict(classes=['zero', 'one', 'two'])
    assert evaluate(metric, samples(GT, SCORES)) == {}
    with open(tmp_path / 'per_class.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['name'] for r in rows] == ['zero', 'one', 'two']
    assert [r['group'] for r in rows] == ['many', 'medium', 'few']
    assert [float(r['accuracy']) for r in rows] == [75.0, 100.0, 0.0]
    assert float(rows[0]['mean_confidence']) == pytest.approx(90.0)
    assert [r['most_confused'] for r in rows] == ['one', '', 'zero']
    assert float(rows[2]['most_confused_rate']) == pytest.approx(50.0)
    markdown = (tmp_path / 'per_class.md').read_text()
    assert '| two | few | 5 | 2 | 0.0 | 35.0 | zero (50.0) |' in markdown
    assert (tmp_path / 'accuracy_vs_train_count.png').stat().st_size > 1000


def test_through_the_evaluator_beside_long_tail_accuracy(tmp_path):
    evaluator = Evaluator([
        dict(type='LongTailAccuracy', class_counts=TRAIN_COUNTS),
        dict(type='LongTailCalibration', class_counts=TRAIN_COUNTS),
        dict(type='LabelShiftAccuracy', class_counts=TRAIN_COUNTS,
             plot=False),
        dict(type='PerClassReport', class_counts=TRAIN_COUNTS,
             out_dir=str(tmp_path)),
    ])
    from mmpretrain.structures import DataSample
    outputs = [
        DataSample().set_gt_label(y).set_pred_score(torch.tensor(s))
        for y, s in zip(GT, SCORES)
    ]
    evaluator.process(data_samples=outputs)
    result = evaluator.evaluate(len(outputs))
    assert result['lt_shift/uniform'] == pytest.approx(result['lt/macro'])
    assert 'calib/ece_few' in result
    assert (tmp_path / 'per_class.csv').is_file()


def build_metrics(counts, out_dir):
    return [
        LongTailCalibration(class_counts=counts),
        LabelShiftAccuracy(class_counts=counts, logit_adjust=True,
                           plot=False),
        PerClassReport(out_dir, class_counts=counts),
    ]


def distributed_worker(rank, world_size, port, out_dir):
    init_gloo(rank, world_size, port)
    try:
        gt, scores, counts = random_case()
        data = samples(gt, scores)
        shard = default_sampler_shard(data, rank, world_size)
        result = {}
        for metric in build_metrics(counts, os.path.join(out_dir, 'dist')):
            for start in range(0, len(shard), 8):
                metric.process(None, shard[start:start + 8])
            result.update(metric.evaluate(len(data)))
        if rank == 0:
            with open(os.path.join(out_dir, 'dist.json'), 'w') as f:
                json.dump(dict(shard=len(shard), result=result), f)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes each import mmpretrain: ~25 s
def test_distributed_equals_single_process(tmp_path):
    gt, scores, counts = random_case()
    single = {}
    for metric in build_metrics(counts, str(tmp_path / 'single')):
        single.update(evaluate(metric, samples(gt, scores)))
    mp.spawn(
        distributed_worker,
        args=(2, free_port(), str(tmp_path)),
        nprocs=2,
        join=True)
    with open(tmp_path / 'dist.json') as f:
        record = json.load(f)
    assert record['shard'] == 51  # rank 0 saw 51 of 101, one of them padding
    distributed = record['result']
    assert set(distributed) == set(single)
    assert {'calib/ece_many', 'calib/ece_few', 'lt_shift/la_forward_50'} <= \
        set(single)
    for key, value in single.items():
        assert math.isclose(distributed[key], value, rel_tol=1e-12), key
    assert (tmp_path / 'dist' / 'per_class.csv').read_text() == \
        (tmp_path / 'single' / 'per_class.csv').read_text()
