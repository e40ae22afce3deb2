"""The unconstrained-feature-model studies (research/ufm_study.py)
from the command line; each writes one JSON file to --data-dir, from which
tools/analysis/make_docs.py renders docs/results_ufm.md.

    python tools/analysis/ufm_simulation.py sweep A      # -> ufm_sweep_A.json
    python tools/analysis/ufm_simulation.py sweep B      # -> ufm_sweep_B.json
    python tools/analysis/ufm_simulation.py threshold    # -> ufm_threshold.json
    python tools/analysis/ufm_simulation.py race         # -> ufm_convergence.json
    python tools/analysis/ufm_simulation.py all          # all four

CPU, float64, one thread.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')

import torch  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# research/ sits beside the package in a clone; it is not installed.
sys.path.insert(0, REPO_ROOT)

from research import ufm_study  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('study', choices=['sweep', 'threshold', 'race',
                                          'all'])
    parser.add_argument('setting', nargs='?', default='A',
                        choices=sorted(ufm_study.SETTINGS),
                        help='for sweep and threshold (default A)')
    parser.add_argument('--data-dir', default='docs/data',
                        help='where the JSON files go (default docs/data)')
    return parser.parse_args(argv)


def write(data_dir, name, data, seconds):
    os.makedirs(data_dir, exist_ok=True)
    data['wall_seconds'] = seconds
    path = osp.join(data_dir, name)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
    print(f'wrote {path} ({seconds:.0f} s)')


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny problems: extra threads only spin
    jobs = []
    if args.study in ('sweep', 'all'):
        settings = sorted(ufm_study.SETTINGS) if args.study == 'all' else [
            args.setting]
        jobs += [(f'ufm_sweep_{s}.json', lambda s=s: ufm_study.sweep(s))
                 for s in settings]
    if args.study in ('threshold', 'all'):
        jobs.append(('ufm_threshold.json',
                     lambda: ufm_study.threshold_brackets(args.setting)))
    if args.study in ('race', 'all'):
        jobs.append(('ufm_convergence.json', ufm_study.race))
    for name, job in jobs:
        start = time.time()
        write(args.data_dir, name, job(), time.time() - start)
    return 0


if __name__ == '__main__':
    sys.exit(main())
