"""tools/analysis/compare_lt.py runs a (shortened) study end to end and its
summary reads the runs' own logs."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'analysis'))
from compare_lt import epochs_to_95, summarise  # noqa: E402


def test_epochs_to_95():
    assert epochs_to_95([10, 50, 94, 96, 100]) == 4
    assert epochs_to_95([100, 20, 100]) == 1


def test_summarise_mean_and_std():
    def run(seed, top1):
        acc = {g: [top1] for g in ('top1', 'many', 'medium', 'few')}
        return dict(method='ce', ratio=0.01, seed=seed, acc=acc,
                    nc=[dict(nc1=1.0, mc_means_cos_few=0.5)])

    table = summarise([run(0, 80.0), run(1, 90.0)], ['ce'], [0.01])
    assert '| 0.01 | ce (n=2) | 85.0 ± 5.0 |' in table


@pytest.mark.slow
def test_study_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis',
                                  'compare_lt.py'),
         '--ratios', '0.1', '--seeds', '0', '--methods', 'ce', 'etf_dr_cb',
         'posthoc_la',
         '--out-dir', str(tmp_path), '--cfg-options',
         json.dumps({'train_cfg.max_epochs': 2})],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / 'runs.json') as f:
        runs = json.load(f)
    assert [r['method'] for r in runs] == ['ce', 'etf_dr_cb', 'posthoc_la']
    assert 0 <= runs[2]['acc']['top1'][0] <= 100  # the ce model, adjusted
    for r in runs[:2]:
        assert len(r['acc']['top1']) == 2  # validated every epoch
        assert r['nc'][-1]['epoch'] == 2  # measured at the end
    assert osp.exists(tmp_path / 'curves.png')
    assert '| 0.1 | etf_dr_cb (n=1) |' in result.stdout
