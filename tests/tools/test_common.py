"""tools/common.py: a distributed run that ends normally destroys its
process group (no "destroy_process_group() was not called" at exit)."""
import torch.distributed as torch_dist

from helpers import load_tool

common = load_tool('tools/common.py')


def test_a_finished_run_destroys_its_process_group(tmp_path):
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path / "store"}', rank=0,
        world_size=1)
    try:
        with common.exit_at_once_if_distributed():
            assert torch_dist.is_initialized()
        assert not torch_dist.is_initialized()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
    with common.exit_at_once_if_distributed():
        pass  # without a process group there is nothing to destroy
