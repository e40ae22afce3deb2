import math
import os
import socket
import tempfile
import time

import pytest
import torch
import torch.multiprocessing as mp

from etf_plugin.functional import (NCAccumulator, neural_collapse_metrics,
                                   simplex_etf)

SCALAR_KEYS = [
    'nc1', 'nc2_equinorm', 'nc2_equiangle', 'nc2_cos_std', 'nc2_etf_dist',
    'nc2_equinorm_w', 'nc2_equiangle_w', 'nc2_cos_std_w', 'nc2_etf_dist_w',
    'nc3', 'nc4', 'wm_cos'
]


def _pairwise_cos(vectors):
    """Cosines of all ordered pairs k != k', by the definition."""
    k = len(vectors)
    return torch.stack([
        vectors[i] @ vectors[j] / (vectors[i].norm() * vectors[j].norm())
        for i in range(k) for j in range(k) if i != j
    ])


def _geometry(vectors):
    k = len(vectors)
    norms = vectors.norm(dim=1)
    cos = _pairwise_cos(vectors)
    gram = vectors @ vectors.T
    simplex = (torch.eye(k, dtype=gram.dtype) - 1 / k) / math.sqrt(k - 1)
    return dict(
        equinorm=(norms.std() / norms.mean()).item(),
        equiangle=(cos + 1 / (k - 1)).abs().mean().item(),
        cos_std=cos.std().item(),
        etf_dist=(gram / gram.norm() - simplex).norm().item())


def dense_metrics(features,
                  labels,
                  num_classes,
                  weight=None,
                  bias=None,
                  class_counts=None,
                  weighted_centre=False):
    """Straight from the definitions: dense per-sample matrices, pinv."""
    h = features.double()
    present = [k for k in range(num_classes) if (labels == k).any()]
    means = torch.stack([h[labels == k].mean(0) for k in present])
    centre = h.mean(0) if weighted_centre else means.mean(0)
    mbar = means - centre
    kp, n = len(present), len(h)
    own_mean = means[[present.index(int(y)) for y in labels]]
    sigma_w = (h - own_mean).T @ (h - own_mean) / n
    sigma_b = mbar.T @ mbar / kp
    out = dict(nc1=torch.trace(
        sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True, rtol=1e-10)).item() / kp)
    for name, value in _geometry(mbar).items():
        out[f'nc2_{name}'] = value
    if weight is None:
        return out
    w = weight.double()[present]
    for name, value in _geometry(w).items():
        out[f'nc2_{name}_w'] = value
    out['nc3'] = (w / w.norm() - mbar / mbar.norm()).square().sum().item()
    ncc = torch.tensor(present)[torch.cdist(h, means).argmin(1)]
    logits = h @ weight.double().T
    if bias is not None:
        logits = logits + bias.double()
    out['nc4'] = (ncc != logits.argmax(1)).double().mean().item()
    wm = torch.stack([
        w[i] @ mbar[i] / (w[i].norm() * mbar[i].norm()) for i in range(kp)
    ])
    out['wm_cos'] = wm.mean().item()
    if class_counts is not None:
        counts = torch.as_tensor(class_counts)[present]
        groups = dict(
            many=counts > 100,
            medium=(counts >= 20) & (counts <= 100),
            few=counts < 20)
        for name, mask in groups.items():
            if mask.any():
                out[f'wm_cos_{name}'] = wm[mask].mean().item()
            if mask.sum() >= 2:
                out[f'mc_means_cos_{name}'] = _pairwise_cos(
                    mbar[mask]).mean().item()
                out[f'mc_w_cos_{name}'] = _pairwise_cos(w[mask]).mean().item()
    return out


def imbalanced_labels(num_classes, num_samples, generator):
    # Exponential profile, imbalance ratio 50, shuffled.
    probs = 50.0**(-torch.arange(num_classes) / (num_classes - 1))
    return torch.multinomial(
        probs / probs.sum(), num_samples, replacement=True,
        generator=generator)


def random_problem(num_samples=5000, dim=64, num_classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = imbalanced_labels(num_classes, num_samples, g)
    offsets = torch.randn(num_classes, dim, generator=g)
    features = torch.randn(num_samples, dim, generator=g) + offsets[labels]
    weight = torch.randn(num_classes, dim, generator=g)
    bias = torch.randn(num_classes, generator=g)
    return features, labels, weight, bias


def assert_relative(actual, expected, keys, rtol=1e-6, atol=0.0):
    for key in keys:
        assert key in actual, key
        assert math.isfinite(actual[key]), key
        assert abs(actual[key] - expected[key]) <= \
            atol + rtol * abs(expected[key]), (key, actual[key],
                                               expected[key])


def test_random_features_match_dense():
    features, labels, weight, bias = random_problem()
    class_counts = torch.bincount(labels, minlength=10).tolist()
    assert max(class_counts) > 100 and min(class_counts) < 100
    result = neural_collapse_metrics(
        features, labels, 10, weight, class_counts=class_counts, bias=bias)
    expected = dense_metrics(features, labels, 10, weight, bias,
                             class_counts)
    assert result['num_samples'] == 5000
    assert result['num_classes_present'] == 10
    assert result['absent_classes'] == []
    # Sanity of the problem itself: nothing is collapsed here.
    assert expected['nc1'] > 0.1 and expected['nc4'] > 0.1
    assert_relative(result, expected, expected.keys())
    assert set(expected) <= set(result)


def test_collapsed_etf_with_imbalanced_classes_reads_zero():
    num_classes, dim = 10, 64
    etf = simplex_etf(num_classes, dim, seed=3, dtype=torch.float64)
    counts = [500, 300, 200, 120, 80, 50, 30, 15, 8, 5]
    labels = torch.cat(
        [torch.full((n, ), k) for k, n in enumerate(counts)])
    offset = torch.randn(
        dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Every feature sits on 3 * its class vector, around a common offset that
    # the classifier's bias cancels.
    features = 3.0 * etf[labels] + offset
    bias = -etf @ offset
    result = neural_collapse_metrics(
        features, labels, num_classes, etf, class_counts=counts, bias=bias)
    expected = dense_metrics(features, labels, num_classes, etf, bias,
                             class_counts=counts)
    for key in ['nc1', 'nc2_equinorm', 'nc2_equiangle', 'nc2_cos_std',
                'nc2_etf_dist', 'nc2_equinorm_w', 'nc2_equiangle_w',
                'nc2_etf_dist_w', 'nc3', 'nc4']:
        assert abs(result[key]) < 1e-9, (key, result[key])
    assert result['wm_cos'] == pytest.approx(1.0, abs=1e-12)
    # Few-shot class means stay apart: cos -1/(K-1) between ETF vertices.
    assert result['mc_means_cos_few'] == pytest.approx(-1 / 9, abs=1e-12)
    assert_relative(result, expected, expected.keys(), atol=1e-9)
    # Why the mean of class means is the centre: the sample-weighted global
    # mean leans to the head classes and this perfect ETF would read as
    # non-ETF.
    weighted = dense_metrics(features, labels, num_classes, etf,
                             weighted_centre=True)
    assert weighted['nc2_etf_dist'] > 0.05
    assert weighted['nc2_equinorm'] > 0.05


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_streaming_equals_one_shot_for_any_batch_split(seed):
    features, labels, weight, bias = random_problem(
        num_samples=2000, seed=seed)
    class_counts = torch.bincount(labels, minlength=10)
    one_shot = neural_collapse_metrics(
        features, labels, 10, weight, class_counts=class_counts, bias=bias)
    g = torch.Generator().manual_seed(seed)
    cuts = torch.randint(0, 2001, (int(torch.randint(1, 30, (1, ),
                                                     generator=g)), ),
                         generator=g)
    # Repeated cut points give empty batches, which must be harmless.
    bounds = [0] + sorted(cuts.tolist()) + [2000]
    accumulator = NCAccumulator(10, 64)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        accumulator.update(features[lo:hi], labels[lo:hi])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        accumulator.update_ncc(features[lo:hi], weight, bias)
    streamed = accumulator.compute(weight, class_counts)
    assert streamed.keys() == one_shot.keys()
    for key, value in one_shot.items():
        if isinstance(value, float):
            assert streamed[key] == pytest.approx(value, rel=1e-9, abs=1e-12)
        else:
            assert streamed[key] == value


def test_update_statistics_equal_float64_definition():
    # float32 features far from the origin: class sums or a second moment
    # accumulated in float32 would be off by ~1e-7 relative, the float64
    # definition below is met to ~1e-15.
    g = torch.Generator().manual_seed(0)
    labels = imbalanced_labels(7, 3000, g)
    features = (1000 + torch.randn(3000, 48, generator=g)).float()
    accumulator = NCAccumulator(7, 48)
    for lo, hi in [(0, 0), (0, 1), (1, 257), (257, 257), (257, 3000)]:
        accumulator.update(features[lo:hi], labels[lo:hi].int())
    h = features.double()
    counts, sums, second_moment, sq_norms = accumulator.statistics()
    assert counts.dtype == sums.dtype == second_moment.dtype == \
        sq_norms.dtype == torch.float64
    assert counts.tolist() == torch.bincount(labels, minlength=7).tolist()
    expected_sums = torch.stack([h[labels == k].sum(0) for k in range(7)])
    expected_moment = sum(torch.outer(row, row) for row in h[:300]) + \
        h[300:].T @ h[300:]
    torch.testing.assert_close(sums, expected_sums, rtol=1e-13, atol=0)
    torch.testing.assert_close(
        second_moment, expected_moment, rtol=1e-13, atol=0)
    expected_sq = torch.stack(
        [h[labels == k].square().sum() for k in range(7)])
    torch.testing.assert_close(sq_norms, expected_sq, rtol=1e-13, atol=0)


def test_update_leaves_the_thread_count_alone():
    # A pure-maths module: the thread policy is the caller's
    # (etf_plugin.engine.neural_collapse.one_cpu_thread).
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        accumulator = NCAccumulator(5, 8)
        seen = []
        originals = {name: getattr(torch.Tensor, name)
                     for name in ('addmm_', 'scatter_add_')}

        def spy(name):
            def method(self, *args, **kwargs):
                seen.append(torch.get_num_threads())
                return originals[name](self, *args, **kwargs)
            return method

        for name in originals:
            setattr(torch.Tensor, name, spy(name))
        try:
            accumulator.update(torch.randn(4, 8), torch.tensor([0, 1, 2, 3]))
        finally:
            for name, method in originals.items():
                setattr(torch.Tensor, name, method)
        assert seen == [2, 2, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_absent_classes_are_skipped_and_reported():
    features, labels, weight, bias = random_problem(num_samples=1000)
    keep = (labels != 3) & (labels != 7)
    features, labels = features[keep], labels[keep]
    counts = [500, 300, 200, 120, 80, 50, 30, 15, 8, 5]
    result = neural_collapse_metrics(
        features, labels, 10, weight, class_counts=counts, bias=bias)
    assert result['absent_classes'] == [3, 7]
    assert result['num_classes_present'] == 8
    expected = dense_metrics(features, labels, 10, weight, bias, counts)
    assert_relative(result, expected, expected.keys())
    assert all(
        math.isfinite(v) for v in result.values() if isinstance(v, float))

    # A group left with one present class has no pairwise cosine: the key is
    # dropped, not NaN.
    few_missing = neural_collapse_metrics(
        features, labels, 10, weight,
        class_counts=[500, 300, 200, 10, 80, 50, 30, 500, 15, 500])
    assert 'mc_means_cos_few' not in few_missing
    assert 'wm_cos_few' in few_missing


def test_fewer_than_two_classes_returns_counts_only():
    features = torch.randn(20, 8)
    labels = torch.full((20, ), 4)
    with pytest.warns(UserWarning, match='at least 2 classes'):
        result = neural_collapse_metrics(features, labels, 5)
    assert result == dict(
        num_samples=20, num_classes_present=1, absent_classes=[0, 1, 2, 3])


def test_bad_inputs_raise_clear_errors():
    accumulator = NCAccumulator(5, 8)
    with pytest.raises(ValueError, match='shape'):
        accumulator.update(torch.randn(4, 7), torch.zeros(4).long())
    with pytest.raises(ValueError, match='num_classes'):
        accumulator.update(torch.randn(4, 8), torch.tensor([0, 1, 2, 5]))
    with pytest.raises(ValueError, match='update\\(\\)'):
        accumulator.update_ncc(torch.randn(4, 8), torch.randn(5, 8))
    accumulator.update(torch.randn(4, 8), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match='classifier'):
        accumulator.compute(torch.randn(8, 5))
    with pytest.raises(ValueError, match='class_counts'):
        accumulator.compute(class_counts=[1, 2, 3])


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _distributed_worker(rank, world_size, port, out_dir):
    import torch.distributed as torch_dist
    torch_dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    features, labels, weight, bias = random_problem(num_samples=3000)
    # Uneven shards, as a sampler without padding gives.
    shard = slice(0, 1100) if rank == 0 else slice(1100, 3000)
    accumulator = NCAccumulator(10, 64)
    for lo in range(shard.start, shard.stop, 256):
        hi = min(lo + 256, shard.stop)
        accumulator.update(features[lo:hi], labels[lo:hi])
    for stat in accumulator.statistics():
        torch_dist.all_reduce(stat)
    for lo in range(shard.start, shard.stop, 256):
        hi = min(lo + 256, shard.stop)
        accumulator.update_ncc(features[lo:hi], weight, bias)
    for stat in accumulator.ncc_statistics():
        torch_dist.all_reduce(stat)
    torch.save(accumulator.compute(weight, [500] * 5 + [10] * 5),
               os.path.join(out_dir, f'rank{rank}.pth'))
    torch_dist.destroy_process_group()


@pytest.mark.slow
def test_all_reduce_over_two_gloo_processes_matches_one_process():
    with tempfile.TemporaryDirectory() as out_dir:
        context = mp.start_processes(
            _distributed_worker,
            args=(2, _free_port(), out_dir),
            nprocs=2,
            join=False,
            start_method='spawn')
        deadline = time.time() + 120
        while not context.join(timeout=1):
            if time.time() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail('gloo workers did not finish within 120 s')
        results = [
            torch.load(os.path.join(out_dir, f'rank{r}.pth'))
            for r in range(2)
        ]
    features, labels, weight, bias = random_problem(num_samples=3000)
    single = neural_collapse_metrics(
        features, labels, 10, weight, class_counts=[500] * 5 + [10] * 5,
        bias=bias)
    assert results[0] == results[1]
    assert results[0].keys() == single.keys()
    assert results[0]['num_samples'] == 3000
    for key, value in single.items():
        if isinstance(value, float):
            assert results[0][key] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_nc1_after_minority_collapse_is_zero_not_noise():
    # Two minority classes merged onto one mean (Sigma_B loses a direction
    # to ~1e-16) and every sample on its class mean: nc1 must be 0, not the
    # ratio of two rounding errors.
    g = torch.Generator().manual_seed(0)
    means = torch.randn(5, 16, generator=g, dtype=torch.float64)
    means[4] = means[3]
    labels = torch.arange(5).repeat_interleave(torch.tensor([50, 40, 30, 3, 2]))
    features = means[labels] + 1e-9 * torch.randn(
        len(labels), 16, generator=g, dtype=torch.float64)
    nc1 = neural_collapse_metrics(features, labels, 5)['nc1']
    assert 0 <= nc1 < 1e-8
