"""CPUThreadsHook sets PyTorch's CPU thread count at the start of a run,
unless OMP_NUM_THREADS is set."""
import logging
from types import SimpleNamespace

import pytest
import torch

from etf_plugin.engine.hooks import CPUThreadsHook


@pytest.fixture
def runner():
    threads = torch.get_num_threads()
    yield SimpleNamespace(logger=logging.getLogger('test_cpu_threads'))
    torch.set_num_threads(threads)


def test_sets_the_thread_count(runner, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    torch.set_num_threads(2)
    CPUThreadsHook(num_threads=1).before_run(runner)
    assert torch.get_num_threads() == 1
    CPUThreadsHook(num_threads=3).before_run(runner)
    assert torch.get_num_threads() == 3


def test_omp_num_threads_wins(runner, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '2')
    torch.set_num_threads(2)
    CPUThreadsHook(num_threads=1).before_run(runner)
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize('bad', [0, -1, 1.5])
def test_bad_thread_count_is_refused(bad):
    with pytest.raises(ValueError, match='num_threads must be a positive'):
        CPUThreadsHook(num_threads=bad)
