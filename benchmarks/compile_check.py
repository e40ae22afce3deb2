"""``compile`` in a config: two training iterations of a CifarResNet-8 +
ETFHead + class-balanced DR model in MMEngine's Runner, eager and with
``cfg.compile`` (MMEngine compiles ``model.train_step``), in fp32 and under
AMP, side by side: losses, their largest difference, the graphs dynamo
captured and its graph breaks.

    python benchmarks/compile_check.py [--backend inductor|aot_eager]

Under AMP a CPU autocasts to bfloat16 with ``torch.amp.GradScaler('cpu')``
(see benchmarks/amp_overflow_check.py), a GPU runs MMEngine's fp16 path.
Exits non-zero if a compiled run fails or its losses differ from eager ones
by more than ``--rtol`` (fp32) or ``--amp-rtol`` (AMP: half-precision
round-off of a reordered graph). The graph breaks it lists are in MMEngine's
code around the model (data preprocessor, ``backward``, the optimizer).
"""
import argparse
import os.path as osp
import sys
import traceback

import torch
from mmengine.hooks import Hook
from torch._dynamo.utils import counters

# A script's own directory is on sys.path, not when a test loads it.
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from amp_overflow_check import build_model, train  # noqa: E402


class RecordLosses(Hook):

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(
            runner.message_hub.get_scalar('train/loss').current())


def run(compile_cfg=False, amp=False, max_iters=2):
    """Train ``max_iters`` iterations; returns the losses and the model."""
    model = build_model(dict(type='DotRegressionLoss', class_balanced=True))
    record = RecordLosses()
    train(model, [record], amp, max_iters,
          experiment_name=f'compile_{bool(compile_cfg)}_{amp}',
          cfg=dict(compile=compile_cfg))
    return record.losses, model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--backend', default='inductor')
    parser.add_argument('--rtol', type=float, default=1e-4)
    parser.add_argument('--amp-rtol', type=float, default=1e-2)
    args = parser.parse_args()
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    failed = False
    print(f'| precision on {device} | eager losses | compiled losses '
          f'({args.backend}) | max rel. difference | graphs | graph breaks |')
    print('|---|---|---|---|---|---|')
    for amp in (False, True):
        name = ('fp32' if not amp else
                'AMP ' + ('bfloat16' if device == 'cpu' else 'float16'))
        eager, _ = run(False, amp)
        torch._dynamo.reset()
        counters.clear()
        try:
            compiled, _ = run(dict(backend=args.backend), amp)
        except Exception:  # noqa: BLE001  (reported, then the next row)
            print(f'| {name} | {eager} | failed: '
                  f'{traceback.format_exc(limit=1).splitlines()[-1]} | | | |')
            failed = True
            continue
        difference = max(
            abs(c - e) / max(abs(e), 1e-12) for c, e in zip(compiled, eager))
        breaks = sum(counters['graph_break'].values())
        print(f'| {name} | {[round(float(x), 6) for x in eager]} | '
              f'{[round(float(x), 6) for x in compiled]} | {difference:.2e} | '
              f'{counters["stats"]["unique_graphs"]} | {breaks} |')
        failed |= not difference <= (args.amp_rtol if amp else args.rtol)
        for reason in counters['graph_break']:
            print(f'    graph break: {reason.splitlines()[0][:150]}')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
