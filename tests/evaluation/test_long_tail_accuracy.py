import json

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.dist import get_world_size
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

from helpers import default_sampler_shard, free_port, init_gloo
from etf_plugin.evaluation import LongTailAccuracy

# Hand-made case. Training counts [150, 50, 5]: class 0 many-shot, class 1
# medium, class 2 few-shot. Scores over 3 classes, argmax first:
#   class 0: 4 samples, top-1 right on 3 (75 %), the miss has it 2nd;
#   class 1: 2 samples, top-1 right on 1 (50 %), the miss has it 3rd;
#   class 2: 2 samples, top-1 right on 0 (0 %), one has it 2nd.
# top-1 = 4/8 = 50 %, top-2 = 6/8 = 75 %, macro = (75 + 50 + 0)/3,
# many = 75, medium = 50, few = 0.
TRAIN_COUNTS = [150, 50, 5]
GT = [0, 0, 0, 0, 1, 1, 2, 2]
SCORES = [
    [0.7, 0.2, 0.1],
    [0.6, 0.3, 0.1],
    [0.5, 0.1, 0.4],
    [0.3, 0.6, 0.1],  # miss, gt 2nd
    [0.1, 0.8, 0.1],
    [0.5, 0.1, 0.4],  # miss, gt 3rd (0.1 < 0.4)
    [0.6, 0.3, 0.1],  # miss, gt 3rd
    [0.2, 0.5, 0.3],  # miss, gt 2nd
]


def samples(gt=GT, scores=SCORES):
    return [
        dict(gt_label=torch.tensor([y]), pred_score=torch.tensor(s))
        for y, s in zip(gt, scores)
    ]


def evaluate(metric, data_samples):
    metric.process(None, data_samples)
    return metric.evaluate(len(data_samples))


def test_hand_computed_values():
    metric = LongTailAccuracy(
        topk=(1, 2), class_counts=TRAIN_COUNTS, per_class=True)
    result = evaluate(metric, samples())
    assert result['lt/top1'] == pytest.approx(50.0)
    assert result['lt/top2'] == pytest.approx(75.0)
    assert result['lt/macro'] == pytest.approx(125.0 / 3)
    assert result['lt/many'] == pytest.approx(75.0)
    assert result['lt/medium'] == pytest.approx(50.0)
    assert result['lt/few'] == pytest.approx(0.0)
    assert result['lt/per_class'] == pytest.approx([75.0, 50.0, 0.0])


def test_thresholds_regroup_classes():
    # few_thr=60 moves class 1 (50 images) to few: few = (50 + 0) / 2.
    metric = LongTailAccuracy(class_counts=TRAIN_COUNTS, few_thr=60)
    result = evaluate(metric, samples())
    assert result['lt/few'] == pytest.approx(25.0)
    assert 'lt/medium' not in result
    assert result['lt/many'] == pytest.approx(75.0)


def test_empty_groups_and_absent_classes_are_omitted():
    # No class is few-shot; class 2 is absent from the evaluation set.
    metric = LongTailAccuracy(class_counts=[500, 300, 50], per_class=True)
    result = evaluate(metric, samples()[:6])
    values = [v for k, v in result.items() if k != 'lt/per_class']
    assert all(np.isfinite(v) for v in values)
    assert 'lt/few' not in result
    assert result['lt/macro'] == pytest.approx((75.0 + 50.0) / 2)
    assert result['lt/many'] == pytest.approx((75.0 + 50.0) / 2)
    assert 'lt/medium' not in result  # class 2 is medium but not evaluated
    assert result['lt/per_class'] == [75.0, 50.0, None]


def test_pred_label_only():
    data = [
        dict(gt_label=torch.tensor([y]), pred_label=torch.tensor([p]))
        for y, p in zip([0, 1, 2, 2], [0, 0, 2, 2])
    ]
    result = evaluate(LongTailAccuracy(class_counts=TRAIN_COUNTS), data)
    assert result['lt/top1'] == pytest.approx(75.0)
    assert result['lt/macro'] == pytest.approx(200.0 / 3)
    metric = LongTailAccuracy(topk=(1, 2), class_counts=TRAIN_COUNTS)
    with pytest.raises(ValueError, match='pred_score'):
        metric.process(None, data)


def test_counts_sources(tmp_path):
    path = tmp_path / 'counts.txt'
    path.write_text('150\n50\n\n5\n')
    from_file = LongTailAccuracy(counts_file=str(path))
    assert from_file.class_counts.tolist() == TRAIN_COUNTS
    handed = METRICS.build(dict(type='LongTailAccuracy'))
    with pytest.raises(RuntimeError, match='ClassCountsHook'):
        handed.compute_metrics([dict(gt_label=0, pred_topk=torch.tensor([0]))])
    handed.set_class_counts(np.array(TRAIN_COUNTS))
    assert handed.class_counts.tolist() == TRAIN_COUNTS
    with pytest.raises(ValueError, match='not both'):
        LongTailAccuracy(class_counts=TRAIN_COUNTS, counts_file=str(path))
    path.write_text('150\nfifty\n')
    with pytest.raises(ValueError, match='one integer count per line'):
        LongTailAccuracy(counts_file=str(path))


def test_mismatched_classes_and_labels():
    metric = LongTailAccuracy(class_counts=TRAIN_COUNTS)
    metric.dataset_meta = dict(classes=['a', 'b'])
    with pytest.raises(ValueError, match='2 classes'):
        evaluate(metric, samples())
    metric = LongTailAccuracy(class_counts=TRAIN_COUNTS[:2])
    with pytest.raises(ValueError, match=r'\[0, 2\)'):
        evaluate(metric, samples())


def test_through_evaluator_with_data_samples():
    # The path tools/test.py takes: TestLoop -> Evaluator.process with the
    # model's DataSample outputs -> Evaluator.evaluate.
    evaluator = Evaluator(
        dict(type='LongTailAccuracy', class_counts=TRAIN_COUNTS,
             topk=(1, 2)))
    evaluator.dataset_meta = dict(classes=['a', 'b', 'c'])
    outputs = [
        DataSample().set_gt_label(y).set_pred_score(torch.tensor(s))
        for y, s in zip(GT, SCORES)
    ]
    evaluator.process(data_samples=outputs[:5])
    evaluator.process(data_samples=outputs[5:])
    result = evaluator.evaluate(len(outputs))
    assert result['lt/top1'] == pytest.approx(50.0)
    assert result['lt/top2'] == pytest.approx(75.0)
    assert result['lt/few'] == pytest.approx(0.0)


def random_case(seed=0, num=101, num_classes=7):
    generator = torch.Generator().manual_seed(seed)
    gt = torch.randint(num_classes, (num, ), generator=generator).tolist()
    scores = torch.rand(num, num_classes, generator=generator).tolist()
    counts = [300, 150, 90, 40, 19, 8, 2]
    return gt, scores, counts


def distributed_worker(rank, world_size, port, out_path):
    init_gloo(rank, world_size, port)
    try:
        gt, scores, counts = random_case()
        data = samples(gt, scores)
        shard = default_sampler_shard(data, rank, world_size)
        metric = LongTailAccuracy(
            topk=(1, 3), class_counts=counts, per_class=True)
        for start in range(0, len(shard), 8):
            metric.process(None, shard[start:start + 8])
        result = metric.evaluate(len(data))
        if rank == 0:
            with open(out_path, 'w') as f:
                json.dump(
                    dict(world_size=get_world_size(), shard=len(shard),
                         result=result), f)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes each import mmpretrain: ~25 s
def test_distributed_equals_single_process(tmp_path):
    gt, scores, counts = random_case()
    single = evaluate(
        LongTailAccuracy(topk=(1, 3), class_counts=counts, per_class=True),
        samples(gt, scores))
    out_path = str(tmp_path / 'dist.json')
    mp.spawn(
        distributed_worker,
        args=(2, free_port(), out_path),
        nprocs=2,
        join=True)
    with open(out_path) as f:
        record = json.load(f)
    # Rank 0 saw only its padded half (51 of 101) but reports on all 101.
    assert record['world_size'] == 2 and record['shard'] == 51
    distributed = record['result']
    assert set(distributed) == set(single)
    for key, value in single.items():
        assert distributed[key] == pytest.approx(value)
    # The case exercises every group.
    assert {'lt/many', 'lt/medium', 'lt/few'} <= set(single)
