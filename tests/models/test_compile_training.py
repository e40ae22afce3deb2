"""``compile`` in a config (MMEngine compiles ``model.train_step``) trains a
CifarResNet + ETFHead + class-balanced DR model with the losses of eager
training, in fp32 on a CPU. benchmarks/compile_check.py runs the same under
AMP and with inductor (see docs/performance.md)."""
import pytest
import torch
from torch._dynamo.utils import counters

from helpers import load_tool

compile_check = load_tool('benchmarks/compile_check.py')


def test_compiled_model_trains_like_eager():
    eager_losses, eager = compile_check.run(False)
    torch._dynamo.reset()
    counters.clear()
    # aot_eager: dynamo's graph capture and AOT autograd without inductor's
    # code generation (minutes on a small CPU); tests/models/
    # test_head_compile.py compiles a head with inductor.
    compiled_losses, compiled = compile_check.run(dict(backend='aot_eager'))
    # MMEngine compiled train_step, and dynamo captured graphs of it
    assert 'train_step' in vars(compiled) and 'train_step' not in vars(eager)
    assert counters['stats']['unique_graphs'] >= 1
    assert len(eager_losses) == len(compiled_losses) == 2
    # Tolerance: float32 round-off of a reordered graph.
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5)
    for (name, a), b in zip(eager.state_dict().items(),
                            compiled.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
