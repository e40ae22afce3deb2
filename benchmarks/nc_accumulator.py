"""Cost of ``NCAccumulator.update`` against its floor, at ImageNet-LT scale.

The floor is the float64 second-moment update ``S += H^T H`` of the same
float32 batches (one conversion to float64, one ``addmm_``): the part of the
update no implementation can skip. ``update`` adds the counts and the class
sums to it. Rows, per thread count:

- ``update``: ``NCAccumulator.update`` (counts, class sums, squared norms,
  second moment) on the caller's threads;
- ``update_1t``: the same on one CPU thread, as ``collect_nc_statistics``
  (the hook and ``nc_eval.py``) runs it: its memory-bound passes open
  parallel regions that stall on a loaded machine;
- ``floor``: ``S += H^T H`` in float64, cast included;
- for scale: the floor with the cast run on one thread, the same
  product in float32 (not accurate enough for NC1, see the accumulator's
  docstring) and ``update_ncc`` (the NC4 second pass, whose own cost is
  two ``B x d x K`` products).

Every repetition is one pass of each row over the same batches; the order
of the rows alternates between repetitions (ABBA) so that load changes on a
shared machine hit all rows alike. The table gives medians over repetitions
(us per sample), the ratio of the medians to the floor's and the median of
the per-repetition ratios. After the timing, the accumulator's second
moment is checked equal (bit for bit) to the floor's, which saw the same
batches.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/nc_accumulator.py   # 1 and 2 threads
    python benchmarks/nc_accumulator.py --threads 1 --repeats 5 --batches 4
    python benchmarks/nc_accumulator.py --device cuda --threads 1
"""
import argparse
import statistics
import time

import torch
from _timing import abba, interleaved_times, median_ratio, paired_ratio

from etf_plugin.engine.neural_collapse import one_cpu_thread
from etf_plugin.functional import NCAccumulator


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dim', type=int, default=1024)
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument(
        '--batches', type=int, default=8, help='batches per repetition')
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def make_batches(args, device):
    g = torch.Generator().manual_seed(args.seed)
    k = args.num_classes
    # A long-tailed label profile, imbalance ratio 100 (ImageNet-LT-ish).
    probs = 100.0**(-torch.arange(k) / (k - 1))
    batches = []
    for _ in range(args.batches):
        labels = torch.multinomial(
            probs, args.batch_size, replacement=True, generator=g)
        feats = torch.randn(args.batch_size, args.dim, generator=g)
        batches.append((feats.to(device), labels.to(device)))
    return batches


def measure(args, device, batches):
    """Interleaved per-repetition times of every row at the current thread
    count."""
    k, d = args.num_classes, args.dim
    accumulator = NCAccumulator(k, d, device=device)
    accumulator_1t = NCAccumulator(k, d, device=device)
    floor64 = torch.zeros(d, d, dtype=torch.float64, device=device)
    floor64_b = torch.zeros(d, d, dtype=torch.float64, device=device)
    floor32 = torch.zeros(d, d, dtype=torch.float32, device=device)
    classifier = torch.randn(k, d, device=device)

    def run_update():
        for feats, labels in batches:
            accumulator.update(feats, labels)

    def run_update_one_thread():
        with one_cpu_thread(device):
            for feats, labels in batches:
                accumulator_1t.update(feats, labels)

    def run_floor():
        for feats, _ in batches:
            h = feats.to(torch.float64)
            floor64.addmm_(h.T, h)

    def run_floor_serial_cast():
        for feats, _ in batches:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            h = feats.to(torch.float64)
            torch.set_num_threads(threads)
            floor64_b.addmm_(h.T, h)

    def run_floor32():
        for feats, _ in batches:
            floor32.addmm_(feats.T, feats)

    def run_ncc():
        for feats, _ in batches:
            accumulator.update_ncc(feats, classifier)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    rows = [('update', run_update), ('update_1t', run_update_one_thread),
            ('floor', run_floor),
            ('serial_cast', run_floor_serial_cast), ('fp32', run_floor32)]
    for _, fn in rows:  # warm-up, and the same history for the check
        fn()
    times = interleaved_times(rows, args.repeats, order=abba, sync=sync)
    times['ncc'] = []
    identical = torch.equal(accumulator.second_moment, floor64)
    for _ in range(max(1, args.repeats // 3)):  # after the first pass
        sync()
        start = time.perf_counter()
        run_ncc()
        sync()
        times['ncc'].append(time.perf_counter() - start)
    start = time.perf_counter()
    accumulator.compute(classifier)
    compute_s = time.perf_counter() - start
    state_mib = sum(t.numel() * t.element_size()
                    for t in accumulator.statistics()) / 2**20
    return times, identical, compute_s, state_mib


def main():
    args = parse_args()
    device = torch.device(args.device)
    batches = make_batches(args, device)
    samples = args.batches * args.batch_size
    labels = {
        'update': 'NCAccumulator.update',
        'update_1t': 'NCAccumulator.update, one thread',
        'floor': 'floor: S += H^T H, fp64 (cast+addmm)',
        'serial_cast': '  (floor, cast on one thread)',
        'fp32': '  (S += H^T H in fp32)',
        'ncc': '  (update_ncc, NC4 pass)',
    }
    print(f'NCAccumulator.update vs its floor: d={args.dim}, '
          f'K={args.num_classes}, batch={args.batch_size}, float32 features '
          f'in, {args.batches} batches x {args.repeats} interleaved '
          f'repetitions, device={device}')
    print(f'{"threads":>7}  {"step":<40}{"us/sample":>10}{"vs floor":>10}'
          f'{"paired":>9}')
    summary = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        times, identical, compute_s, state_mib = measure(args, device, batches)
        for name in ('update', 'update_1t', 'floor', 'serial_cast', 'fp32',
                     'ncc'):
            median = statistics.median(times[name])
            vs_floor = median_ratio(times[name], times['floor'])
            paired = ''
            if name != 'ncc':  # the NC4 pass runs after, not interleaved
                paired = paired_ratio(times[name], times['floor'])
                paired = f'{paired:>8.2f}x'
            print(f'{torch.get_num_threads():>7}  {labels[name]:<40}'
                  f'{median / samples * 1e6:>10.2f}{vs_floor:>9.2f}x'
                  f'{paired}')
        summary.append(
            f'threads={threads}: update S bit-identical to the floor\'s: '
            f'{identical}; compute() {compute_s:.2f} s')
    print('\n'.join(summary))
    print(f'accumulator state: {state_mib:.1f} MiB (counts, sums, S, '
          f'squared norms in float64), independent of the number of samples')


if __name__ == '__main__':
    main()
