"""Long-tailed detection benchmark: every RoI classifier row of
docs/mmdet.md, trained and evaluated with the same tiny Faster R-CNN,
schedule, synthetic data and seeds; prints the table (mean ± std over the
seeds) and keeps every run in a JSON file, so an interrupted benchmark
resumes where it stopped.

    OMP_NUM_THREADS=1 python benchmarks/det_long_tail.py            # all rows
    python benchmarks/det_long_tail.py --table-only --update-docs  # docs table

Tuning happens on the held-out split only (``--split heldout``, another
draw of the generator that the reported numbers never see); its runs go to
their own results file, docs/data/det_long_tail_heldout.json.
"""
import argparse
import os
import os.path as osp
import sys
import time

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from research import det_benchmark as benchmark  # noqa: E402

RESULTS = {
    'test': osp.join('docs', 'data', 'det_long_tail.json'),
    'heldout': osp.join('docs', 'data', 'det_long_tail_heldout.json'),
}


def parse_value(text: str):
    """``--cfg-options`` value: a Python literal if it is one, else text."""
    import ast
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', nargs='+', default=list(benchmark.ROWS),
                        choices=list(benchmark.ROWS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--split', choices=benchmark.SPLITS, default='test',
                        help='test: the reported split; heldout: for tuning')
    parser.add_argument('--results', help='results JSON (default: '
                        f'{RESULTS["test"]} for test, {RESULTS["heldout"]} '
                        'for heldout)')
    parser.add_argument('--work-dir',
                        default=osp.join('work_dirs', 'det_long_tail'))
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='overrides of every row\'s config, recorded '
                        'with the runs')
    parser.add_argument('--test-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='extra evaluations of each trained model with '
                        'these loss_cls attributes set, one per pair (e.g. '
                        'logit_scale=5)')
    parser.add_argument('--force', action='store_true',
                        help='rerun runs already in the results file')
    parser.add_argument('--table-only', action='store_true',
                        help='print the table from the results file')
    parser.add_argument('--update-docs', action='store_true',
                        help='write the table into docs/mmdet.md')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO_ROOT)
    if os.environ.get('OMP_NUM_THREADS') is None:
        # the machine is shared: one thread unless asked otherwise
        torch.set_num_threads(1)
    results_path = args.results or RESULTS[args.split]
    options = dict(
        item.split('=', 1) for item in args.cfg_options)
    options = {key: parse_value(value) for key, value in options.items()}
    test_options = []
    for item in args.test_options:
        key, value = item.split('=', 1)
        test_options.append({key: parse_value(value)})
    if options and args.split == 'test':
        print('Note: --cfg-options on the reported split; tune on '
              '--split heldout.', file=sys.stderr)

    results = benchmark.load_results(results_path)
    results.setdefault('runs', {})
    started = time.time()
    if not args.table_only:
        results['environment'] = benchmark.environment()
        for seed in args.seeds:
            for row in args.rows:
                key = benchmark.run_key(row, seed, args.split, options)
                if key in results['runs'] and not args.force:
                    print(f'[skip] {key}: in {results_path}', flush=True)
                    continue
                print(f'[run ] {key}', flush=True)
                work_dir = osp.join(args.work_dir, args.split,
                                    key.split('/', 1)[1].replace(' ', '_'))
                result = benchmark.run_one(row, seed, work_dir, args.split,
                                           options, REPO_ROOT, test_options)
                results['runs'][key] = result
                benchmark.save_results(results_path, results)
                groups = benchmark.group_ap(result)
                print(f'[done] {key}: mAP {result["mAP"]:.3f}, AP_r '
                      f'{groups.get("rare", float("nan")):.3f}, '
                      f'{result["seconds"]:.0f} s', flush=True)
        print(f'wall time: {time.time() - started:.0f} s', flush=True)

    runs = [
        run for key, run in results['runs'].items()
        if run['split'] == args.split and run['options'] == options
        and run['seed'] in args.seeds and run['row'] in args.rows
    ]
    table = benchmark.summarize(runs, args.rows)
    text = benchmark.format_table(table)
    print(text)
    if args.update_docs:
        if args.split != 'test' or options:
            sys.exit('--update-docs takes the reported split without '
                     '--cfg-options.')
        seconds = [run['seconds'] for run in runs]
        counts = runs[0]['train_counts'] if runs else []
        note = (f'\n\n{len(runs)} runs, {sum(seconds) / 60:.0f} min in all '
                f'({min(seconds):.0f} to {max(seconds):.0f} s each) on one '
                f'CPU thread; training instances per class {counts}; '
                f'per-seed results in `{RESULTS["test"]}`.')
        benchmark.update_docs(osp.join('docs', 'mmdet.md'), text + note)


if __name__ == '__main__':
    main()
