"""check_same_on_all_ranks and RankConsistencyHook (its ETF check and its
buffer broadcast) in a real 2-process gloo group (spawned here, no
Runner)."""
import logging
import multiprocessing
import traceback
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ports import free_port

WORLD_SIZE = 2

pytestmark = pytest.mark.slow  # spawns two processes that import mmpretrain


def etf_module(etf: torch.Tensor) -> nn.Module:
    """A model whose head holds ``etf`` as ETFHead does."""
    model = nn.Module()
    model.head = nn.Module()
    model.head.register_buffer('etf_vectors', etf)
    return model


def one_ulp_up(tensor: torch.Tensor) -> torch.Tensor:
    bumped = tensor.clone()
    bumped[0, 0] = torch.nextafter(bumped[0, 0], torch.tensor(2.0))
    return bumped


def run_cases(rank):
    """What each case does on ``rank``; returns {case: 'ok' or the error}."""
    from etf_plugin.engine.hooks import RankConsistencyHook
    from etf_plugin.functional import simplex_etf
    from etf_plugin.utils import check_same_on_all_ranks

    etf = simplex_etf(10, 16, seed=0)
    inputs = {
        'same': etf,
        'one_ulp': one_ulp_up(etf) if rank == 1 else etf,
        'shape': simplex_etf(10, 16 + rank),
        'dtype': etf.double() if rank == 1 else etf,
        'signed_zero': torch.tensor([-0.0 if rank == 1 else 0.0]),
        'integers': torch.tensor([1, 2, 3 + rank]),
    }
    results = {}
    for case, tensor in inputs.items():
        try:
            check_same_on_all_ranks(tensor, f'case_{case}')
            results[case] = 'ok'
        except ValueError as error:
            results[case] = str(error)

    class Logger:

        def __init__(self):
            self.messages = []

        def info(self, message):
            self.messages.append(message)

    for case, tensor in (('hook_same', etf), ('hook_one_ulp',
                                               inputs['one_ulp'])):
        runner = SimpleNamespace(model=etf_module(tensor), logger=Logger())
        hook = RankConsistencyHook()
        try:
            hook.before_test(runner)
            hook.before_val(runner)
            results[case] = runner.logger.messages
        except ValueError as error:
            results[case] = str(error)

    bn = nn.BatchNorm1d(4)
    bn.running_mean.fill_(float(rank + 1))
    bn.running_var.fill_(float(10 * (rank + 1)))
    bn.num_batches_tracked.fill_(7 + rank)
    bn.register_buffer('etf_vectors', inputs['one_ulp'])
    RankConsistencyHook().after_train_epoch(SimpleNamespace(model=bn))
    results['broadcast'] = {
        'running_mean': bn.running_mean.tolist(),
        'running_var': bn.running_var.tolist(),
        'num_batches_tracked': bn.num_batches_tracked.item(),
        'etf_is_rank0': torch.equal(bn.etf_vectors, etf),
        'weight_untouched': bn.weight.tolist() == [1.0] * 4,
    }
    return results


def worker(rank, port, queue):
    try:
        torch.distributed.init_process_group(
            'gloo',
            init_method=f'tcp://127.0.0.1:{port}',
            rank=rank,
            world_size=WORLD_SIZE)
        queue.put((rank, run_cases(rank)))
        torch.distributed.destroy_process_group()
    except BaseException:  # report anything to the test, never hang it
        queue.put((rank, traceback.format_exc()))


@pytest.fixture(scope='module')
def results():
    """Every case's outcome on each rank: ``results[rank][case]``."""
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    port = free_port()
    processes = [
        context.Process(target=worker, args=(rank, port, queue))
        for rank in range(WORLD_SIZE)
    ]
    for process in processes:
        process.start()
    try:
        outcome = dict(queue.get(timeout=180) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    for rank, result in outcome.items():
        assert isinstance(result, dict), f'rank {rank} failed:\n{result}'
    return outcome


def test_identical_tensor_passes(results):
    assert results[0]['same'] == results[1]['same'] == 'ok'


@pytest.mark.parametrize('case', ['one_ulp', 'signed_zero', 'integers'])
def test_any_bit_difference_raises_on_every_rank(results, case):
    for rank in range(WORLD_SIZE):
        message = results[rank][case]
        assert f'case_{case} is not bit-identical' in message
        # both ranks name the odd rank, so both logs point at it
        assert 'on rank 1:' in message and 'rank 0:' not in message



def test_reports_the_size_of_the_difference(results):
    from etf_plugin.functional import simplex_etf

    etf = simplex_etf(10, 16, seed=0)
    ulp = (one_ulp_up(etf) - etf).abs().max().item()
    assert ulp > 0
    assert f'on rank 1: {ulp:.3g}.' in results[0]['one_ulp']
    assert 'on rank 1: nan.' in results[0]['integers']


@pytest.mark.parametrize('case', ['shape', 'dtype'])
def test_shape_or_dtype_difference_raises_on_every_rank(results, case):
    for rank in range(WORLD_SIZE):
        message = results[rank][case]
        assert f'case_{case} differs between distributed ranks: ranks [1]' \
            in message
        assert "rank 0's shape (10, 16) and dtype torch.float32" in message


def test_rank_consistency_hook_checks_the_etf(results):
    # passes and reports once (before_test then before_val) when identical
    assert results[0]['hook_same'] == [
        'RankConsistencyHook: head.etf_vectors (10, 16) bit-identical on '
        'all 2 ranks.'
    ]
    for rank in range(WORLD_SIZE):
        assert 'head.etf_vectors is not bit-identical' in \
            results[rank]['hook_one_ulp']


def test_rank_consistency_hook_copies_rank0_buffers(results):
    for rank in range(WORLD_SIZE):
        assert results[rank]['broadcast'] == {
            'running_mean': [1.0] * 4,
            'running_var': [10.0] * 4,
            'num_batches_tracked': 7,
            'etf_is_rank0': True,
            'weight_untouched': True,
        }


def test_single_process_is_a_no_op(caplog):
    from etf_plugin.engine.hooks import RankConsistencyHook
    from etf_plugin.utils import check_same_on_all_ranks

    assert not torch.distributed.is_initialized()
    check_same_on_all_ranks(torch.randn(3), 'anything')
    logger = logging.getLogger('test_single_process_is_a_no_op')
    runner = SimpleNamespace(model=etf_module(torch.eye(3)), logger=logger)
    with caplog.at_level(logging.INFO):
        RankConsistencyHook().before_train(runner)
    assert caplog.messages == []
    bn = nn.BatchNorm1d(2)
    bn.running_mean.fill_(3.0)
    RankConsistencyHook().after_train_epoch(SimpleNamespace(model=bn))
    assert bn.running_mean.tolist() == [3.0, 3.0]
