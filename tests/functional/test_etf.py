import subprocess
import sys

import pytest
import torch

from etf_plugin.functional import etf_gram_error, simplex_etf


@pytest.mark.parametrize('num_classes', [2, 10, 100, 1000])
@pytest.mark.parametrize('dim_offset', ['K-1', 'K', '2048'])
def test_simplex_etf_geometry(num_classes, dim_offset):
    dim = {'K-1': num_classes - 1, 'K': num_classes, '2048': 2048}[dim_offset]
    etf = simplex_etf(num_classes, dim, seed=3)
    assert etf.shape == (num_classes, dim)
    assert etf.dtype == torch.float32
    norms = etf.double().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    cos = etf.double() @ etf.double().T
    off_diagonal = cos[~torch.eye(num_classes, dtype=torch.bool)]
    assert torch.allclose(
        off_diagonal,
        torch.full_like(off_diagonal, -1.0 / (num_classes - 1)),
        atol=1e-5)
    assert etf.double().sum(dim=0).abs().max() < 1e-5
    assert etf_gram_error(etf) < 1e-5


def test_simplex_etf_is_seeded_not_global_rng():
    torch.manual_seed(123)
    a = simplex_etf(10, 64, seed=1)
    torch.manual_seed(456)
    b = simplex_etf(10, 64, seed=1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, simplex_etf(10, 64, seed=2))


def test_simplex_etf_identical_in_new_process():
    code = ('import torch, sys; from etf_plugin.functional import '
            'simplex_etf; torch.save(simplex_etf(100, 128, seed=7), '
            'sys.argv[1])')
    here = simplex_etf(100, 128, seed=7)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = f'{tmp}/etf.pt'
        subprocess.run([sys.executable, '-c', code, path], check=True)
        there = torch.load(path)
    assert torch.equal(here, there)


@pytest.mark.parametrize('num_classes, dim, match', [
    (1, 10, 'num_classes >= 2'),
    (0, 10, 'num_classes >= 2'),
    (1000, 512, 'proj_channels'),
    (10, 8, 'spans 9 dimensions'),
])
def test_simplex_etf_bad_input(num_classes, dim, match):
    with pytest.raises(ValueError, match=match):
        simplex_etf(num_classes, dim)
