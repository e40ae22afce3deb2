"""The NC metrics of the literature (NC1 forms, CDNV, nearest-ETF distance,
effective rank, per-group ratios) against a reference written here, from the
definitions, in numpy float64 with dense per-sample matrices."""
import numpy as np
import pytest
import torch

from etf_plugin.functional import neural_collapse_metrics

GROUPS = dict(many=lambda n: n > 100, medium=lambda n: (n >= 20) & (n <= 100),
              few=lambda n: n < 20)


def reference(h, y, num_classes, w=None, train_counts=None):
    """Every metric from its definition (module docstring of
    etf_plugin.functional.neural_collapse), nothing streamed."""
    h = np.asarray(h, np.float64)
    present = [k for k in range(num_classes) if (y == k).any()]
    k = len(present)
    means = np.stack([h[y == c].mean(0) for c in present])
    mbar = means - means.mean(0)
    own = means[[present.index(c) for c in y]]
    sigma_w = (h - own).T @ (h - own) / len(h)
    sigma_b = mbar.T @ mbar / k
    out = {}
    out['nc1'] = np.trace(sigma_w @ np.linalg.pinv(
        sigma_b, rcond=1e-10, hermitian=True)) / k
    lam, vec = np.linalg.eigh(sigma_b)
    top = min(k - 1, h.shape[1])
    lam, vec = lam[::-1][:top], vec[:, ::-1][:, :top]
    out['nc1_svd'] = sum(vec[:, j] @ sigma_w @ vec[:, j] / lam[j]
                         for j in range(top)) / k
    out['nc1_ratio'] = np.trace(sigma_w) / np.trace(sigma_b)
    var = np.array([((h[y == c] - means[i])**2).sum(1).mean()
                    for i, c in enumerate(present)])

    def cdnv(idx):
        values = [(var[i] + var[j]) /
                  (2 * ((means[i] - means[j])**2).sum())
                  for a, i in enumerate(idx) for j in idx[a + 1:]]
        return float(np.mean(values))

    out['cdnv'] = cdnv(list(range(k)))
    out.update(nearest_etf(mbar, ''))
    sing = np.linalg.svd(mbar, compute_uv=False)
    p = sing / sing.sum()
    p = p[p > 0]
    out['nc2_erank'] = float(np.exp(-(p * np.log(p)).sum()))
    if w is not None:
        w = np.asarray(w, np.float64)[present]
        out.update(nearest_etf(w, '_w'))
    if train_counts is not None:
        counts = np.asarray(train_counts)[present]
        for name, rule in GROUPS.items():
            idx = list(np.flatnonzero(rule(counts)))
            if not idx:
                continue
            norms = np.linalg.norm(mbar, axis=1)
            out[f'mean_norm_ratio_{name}'] = norms[idx].mean() / norms.mean()
            if w is not None:
                wn = np.linalg.norm(w, axis=1)
                out[f'w_norm_ratio_{name}'] = wn[idx].mean() / wn.mean()
            if len(idx) >= 2:
                out[f'cdnv_{name}'] = cdnv(idx)
    return out


def nearest_etf(vectors, suffix):
    """Distance to the nearest unit-Frobenius simplex ETF, by building it:
    E = A R, A an ETF basis, R from orthogonal Procrustes."""
    k, d = vectors.shape
    if d < k - 1:
        return {}
    x = vectors / np.linalg.norm(vectors)
    # Orthonormal basis of the complement of the all-ones vector.
    q, _ = np.linalg.qr(np.eye(k) - 1.0 / k)
    a = q[:, :k - 1] / np.sqrt(k - 1)
    u, _, vt = np.linalg.svd(a.T @ x, full_matrices=False)
    etf = a @ (u @ vt)
    gram = etf @ etf.T
    # It is a simplex ETF: equal norms, cosines -1/(K-1), unit Frobenius.
    np.testing.assert_allclose(np.diag(gram), 1.0 / k, rtol=1e-9)
    np.testing.assert_allclose(
        gram[~np.eye(k, dtype=bool)] / np.diag(gram)[0], -1.0 / (k - 1),
        rtol=1e-9)
    return {f'nc2_nearest_etf_dist{suffix}': np.linalg.norm(x - etf)}


def imbalanced(num_classes, num_samples, rng, ratio=200):
    """Shuffled labels with an exponential profile: the first class has
    ``ratio`` times the last one's samples."""
    probs = float(ratio)**(-np.arange(num_classes) / (num_classes - 1))
    counts = np.maximum(2, np.round(probs / probs.sum() * num_samples))
    return rng.permutation(np.repeat(np.arange(num_classes),
                                     counts.astype(int)))


def check(result, expected, rtol=1e-7, atol=1e-12):
    assert set(expected) <= set(result), set(expected) - set(result)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, rel=rtol, abs=atol), key


@pytest.mark.parametrize('dim', [64, 6], ids=['d>=K-1', 'd<K-1'])
def test_random_imbalanced_features_match_reference(dim):
    rng = np.random.default_rng(0)
    y = imbalanced(10, 4000, rng)
    h = rng.normal(size=(len(y), dim)) + 2 * rng.normal(size=(10, dim))[y]
    w = rng.normal(size=(10, dim))
    counts = np.bincount(y, minlength=10)
    assert counts.max() > 100 and (counts < 20).sum() >= 2
    result = neural_collapse_metrics(
        torch.from_numpy(h).float(), torch.from_numpy(y), 10,
        torch.from_numpy(w).float(), class_counts=counts)
    expected = reference(h.astype(np.float32), y, 10,
                         w.astype(np.float32), counts)
    assert expected['nc1'] > 0.01 and expected['cdnv'] > 0.01
    check(result, expected)
    if dim < 9:  # no simplex ETF in 6 dimensions
        assert 'nc2_nearest_etf_dist' not in result
        assert result['nc2_erank'] <= dim


def test_exactly_collapsed_rotated_etf_reads_zero():
    """Features on a simplex ETF in an arbitrary orientation, imbalanced
    (one class of 2 samples): every collapse metric is zero, the nearest
    ETF is found although the classifier is another ETF."""
    rng = np.random.default_rng(1)
    k, d = 10, 32
    basis, _ = np.linalg.qr(np.eye(k) - 1.0 / k)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    etf = np.zeros((k, d))
    etf[:, :k - 1] = basis[:, :k - 1]
    etf = 3.0 * (etf @ rotation) + 5.0  # scaled, shifted off the origin
    counts = [200, 150, 90, 60, 40, 25, 12, 8, 4, 2]
    y = rng.permutation(np.repeat(np.arange(k), counts))
    h = etf[y]
    fixed = np.linalg.qr(rng.normal(size=(d, k)))[0].T  # another frame
    fixed = fixed - fixed.mean(0)
    result = neural_collapse_metrics(
        torch.from_numpy(h), torch.from_numpy(y), k, torch.from_numpy(fixed),
        class_counts=counts)
    for key in ['nc1', 'nc1_svd', 'nc1_ratio', 'cdnv', 'cdnv_few',
                'cdnv_many', 'nc2_nearest_etf_dist', 'nc2_etf_dist']:
        assert abs(result[key]) < 1e-7, (key, result[key])
    assert result['nc2_erank'] == pytest.approx(k - 1, rel=1e-9)
    # Its own fixed ETF is an ETF too, but not the features' one: the
    # nearest-ETF distance of W is 0 while self-duality is not.
    assert result['nc2_nearest_etf_dist_w'] < 1e-7
    assert result['nc3'] > 0.1
    check(result, reference(h, y, k, fixed, counts), rtol=1e-6, atol=1e-7)


def test_cdnv_and_nearest_etf_are_rotation_invariant():
    rng = np.random.default_rng(2)
    y = imbalanced(8, 2000, rng)
    h = rng.normal(size=(len(y), 24)) + 3 * rng.normal(size=(8, 24))[y]
    w = rng.normal(size=(8, 24))
    rotation, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    counts = np.bincount(y, minlength=8)
    before = neural_collapse_metrics(
        torch.from_numpy(h), torch.from_numpy(y), 8, torch.from_numpy(w),
        class_counts=counts)
    after = neural_collapse_metrics(
        torch.from_numpy(h @ rotation), torch.from_numpy(y), 8,
        torch.from_numpy(w @ rotation), class_counts=counts)
    for key in ['cdnv', 'cdnv_many', 'cdnv_few', 'nc2_nearest_etf_dist',
                'nc2_nearest_etf_dist_w', 'nc1', 'nc1_svd', 'nc1_ratio',
                'nc2_erank']:
        assert before[key] > 1e-3, key  # not trivially zero
        assert after[key] == pytest.approx(before[key], rel=1e-9), key
    # A fixed reference frame is not invariant: rotating only the features
    # moves their alignment with W.
    moved = neural_collapse_metrics(
        torch.from_numpy(h @ rotation), torch.from_numpy(y), 8,
        torch.from_numpy(w), class_counts=counts)
    assert moved['wm_cos'] != pytest.approx(before['wm_cos'], abs=1e-3)
