"""Cost of the streaming neural-collapse accumulator at ImageNet-LT scale.

Prints, per sample, the time of ``NCAccumulator.update`` next to its floor,
the ``d x d`` second-moment update ``S += H^T H`` of the same batch (float64,
as the accumulator does it, and float32 for reference), the NC4 second pass,
the peak memory, and the time of the final ``compute``.

Usage::

    python benchmarks/nc_accumulator.py   # N=50k, d=2048, K=1000
    python benchmarks/nc_accumulator.py --num-samples 5000   # quick run
    python benchmarks/nc_accumulator.py --device cuda
"""
import argparse
import resource
import time

import torch

from etf_plugin.functional import NCAccumulator


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-samples', type=int, default=50_000)
    parser.add_argument('--dim', type=int, default=2048)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


class Timer:
    """Accumulates wall time of calls, synchronising the device."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.total = 0.0

    def __call__(self, fn, *args):
        self._sync()
        start = time.perf_counter()
        out = fn(*args)
        self._sync()
        self.total += time.perf_counter() - start
        return out

    def _sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)


def peak_memory_mib(device):
    if torch.device(device).type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the whole process, Python included.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def main():
    args = parse_args()
    n, d, k, bs = args.num_samples, args.dim, args.num_classes, args.batch_size
    device = torch.device(args.device)
    g = torch.Generator(device).manual_seed(args.seed)
    # A long-tailed label profile, imbalance ratio 100 (as ImageNet-LT-ish).
    probs = 100.0**(-torch.arange(k, device=device) / (k - 1))
    class_counts = torch.bincount(
        torch.multinomial(probs, n, replacement=True, generator=g),
        minlength=k)
    classifier = torch.randn(k, d, device=device, generator=g)
    bias = torch.randn(k, device=device, generator=g)
    batches = [(lo, min(lo + bs, n)) for lo in range(0, n, bs)]

    def batch(i):
        lo, hi = batches[i]
        gen = torch.Generator(device).manual_seed(args.seed + 1 + i)
        labels = torch.multinomial(probs, hi - lo, replacement=True,
                                   generator=gen)
        feats = torch.randn(hi - lo, d, device=device, generator=gen)
        return feats, labels

    memory_before = peak_memory_mib(device)
    accumulator = NCAccumulator(k, d, device=device)
    floor64 = torch.zeros(d, d, dtype=torch.float64, device=device)
    floor32 = torch.zeros(d, d, dtype=torch.float32, device=device)
    t_update, t_floor64, t_floor32, t_ncc = (Timer(device) for _ in range(4))
    # Interleaved on the same batch so that load changes hit all alike.
    for i in range(len(batches)):
        feats, labels = batch(i)
        t_update(accumulator.update, feats, labels)
        t_floor64(lambda h: floor64.addmm_(h.double().T, h.double()), feats)
        t_floor32(lambda h: floor32.addmm_(h.T, h), feats)
    accumulator.all_reduce()  # a no-op here; what the hook calls
    memory_after_pass1 = peak_memory_mib(device)
    for i in range(len(batches)):
        feats, _ = batch(i)
        t_ncc(accumulator.update_ncc, feats, classifier, bias)
    t_compute = Timer(device)
    metrics = t_compute(accumulator.compute, classifier, class_counts)

    state_mib = sum(
        t.numel() * t.element_size()
        for t in (accumulator.counts, accumulator.sums,
                  accumulator.second_moment)) / 2**20
    us = 1e6 / n
    print(f'NCAccumulator, N={n}, d={d}, K={k}, batch={bs}, '
          f'device={device}, threads={torch.get_num_threads()}')
    print(f'{"step":<42}{"us/sample":>12}{"vs floor64":>12}')
    rows = [
        ('update (bincount+index_add+addmm, fp64)', t_update.total),
        ('floor: S += H^T H, fp64 (cast+addmm)', t_floor64.total),
        ('reference: S += H^T H, fp32 addmm', t_floor32.total),
        ('update_ncc (NC4 second pass)', t_ncc.total),
    ]
    for name, total in rows:
        print(f'{name:<42}{total * us:>12.2f}'
              f'{total / t_floor64.total:>11.2f}x')
    print(f'{"compute() (all metrics)":<42}{t_compute.total:>11.2f} s')
    floor_mib = (floor64.numel() * 8 + floor32.numel() * 4) / 2**20
    print(f'accumulator state: {state_mib:.1f} MiB (counts, sums, S), '
          f'independent of N')
    print(f'peak {"allocated" if device.type == "cuda" else "RSS"}: '
          f'{memory_before:.0f} MiB before, {memory_after_pass1:.0f} MiB '
          f'after the first pass (incl. {floor_mib:.0f} MiB of floor '
          f'buffers), {peak_memory_mib(device):.0f} MiB at the end')
    print(f'sanity: nc1={metrics["nc1"]:.4g}, '
          f'classes present={metrics["num_classes_present"]}')


if __name__ == '__main__':
    main()
