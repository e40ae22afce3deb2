"""The long-tailed digits study (research/study.py) from the command
line: run it, rerun one of its runs, or regenerate the docs from its file.

    # run what is missing (resumable; two single-threaded processes)
    python tools/analysis/digits_study.py run [--out docs/data/digits_lt_runs.jsonl]
    # rerun one stored run and compare it field by field with its row
    python tools/analysis/digits_study.py rerun eval/etf_dr_cb/r0.01/s3
    # list the methods, or the runs still to do
    python tools/analysis/digits_study.py list

``run`` accepts ``--methods``, ``--ratios`` with ``--seeds`` (a smaller
study), ``--max-epochs`` (a pilot: write it to another ``--out``), and
``--workers``. The docs are regenerated with
``tools/analysis/make_docs.py``.
"""
import argparse
import os
import os.path as osp
import sys
import time

# Before torch is imported: one thread per run.
os.environ.setdefault('OMP_NUM_THREADS', '1')

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# research/ sits beside the package in a clone; it is not installed.
sys.path.insert(0, REPO_ROOT)

from research import study  # noqa: E402

DEFAULT_OUT = 'docs/data/digits_lt_runs.jsonl'
DEFAULT_ROOT = 'work_dirs/digits_study'


def sessions_file(out):
    """Where each invocation's wall time is recorded, beside --out."""
    base = out[:-len('_runs.jsonl')] if out.endswith('_runs.jsonl') else \
        os.path.splitext(out)[0]
    return base + '_sessions.jsonl'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='run the missing runs')
    run.add_argument('--methods', nargs='+', choices=list(study.METHODS))
    run.add_argument('--ratios', type=float, nargs='+',
                     help='with --seeds: a smaller grid')
    run.add_argument('--seeds', type=int, nargs='+')
    run.add_argument('--workers', type=int, default=2)
    run.add_argument('--max-epochs', type=int,
                     help='shorter schedule (pilots; use another --out)')
    run.add_argument('--no-tune', action='store_true',
                     help='skip the tuning runs (tuned methods then wait)')
    again = sub.add_parser('rerun', help='rerun one stored run')
    again.add_argument('id', help='the row id, e.g. eval/ce/r0.01/s0')
    again.add_argument('--record', action='store_true',
                       help='append the outcome to rerun_checks.jsonl beside '
                       '--out (the docs show it)')
    sub.add_parser('list', help='the methods and the runs still to do')
    for p in (run, again, sub.choices['list']):
        p.add_argument('--out', default=DEFAULT_OUT,
                       help=f'the per-run file (default {DEFAULT_OUT})')
        p.add_argument('--work-root', default=DEFAULT_ROOT,
                       help=f'work dirs of the runs (default {DEFAULT_ROOT})')
    args = parser.parse_args(argv)
    if args.command == 'run' and (args.ratios is None) != (args.seeds is
                                                           None):
        parser.error('--ratios and --seeds go together')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.command == 'list':
        for method in study.METHODS.values():
            knob = f' (chooses {method.knob.symbol} on held-out data)' \
                if method.knob else ''
            print(f'{method.name:11s} {method.label}{knob}')
        rows = [r for r in study.load_rows(args.out)
                if not study.is_stale(r)]
        done = {r['id'] for r in rows}
        todo = [t.id for t in study.tuning_tasks() if t.id not in done]
        evals, waiting = study.eval_tasks(rows, list(study.METHODS))
        todo += [t.id for t in evals if t.id not in done]
        print(f'{len(rows)} current runs in {args.out}; {len(todo)} to do'
              + (f'; waiting for tuning: {waiting}' if waiting else ''))
        return 0
    if args.command == 'rerun':
        rows = [r for r in study.load_rows(args.out) if r['id'] == args.id]
        if not rows:
            print(f'no row {args.id!r} in {args.out}', file=sys.stderr)
            return 2
        _, different = study.rerun(rows[-1], args.work_root)
        if args.record:
            study.append_row(
                os.path.join(os.path.dirname(args.out), 'rerun_checks.jsonl'),
                dict(id=args.id, date=time.strftime('%Y-%m-%d %H:%M'),
                     different=different))
        if different:
            print(f'{args.id}: the rerun differs in {different}')
            return 1
        print(f'{args.id}: the rerun reproduces every field of its row '
              f'(seconds and host aside)')
        return 0
    seeds = None
    if args.ratios is not None:
        seeds = {ratio: tuple(args.seeds) for ratio in args.ratios}
    before = len(study.load_rows(args.out))
    date, start = time.strftime('%Y-%m-%d %H:%M'), time.time()
    finished = False
    try:
        rows = study.run_study(args.out, args.work_root,
                               methods=args.methods, seeds=seeds,
                               workers=args.workers,
                               max_epochs=args.max_epochs,
                               tune=not args.no_tune)
        finished = True
    finally:  # an interrupted invocation is recorded too
        session = dict(date=date, wall_seconds=time.time() - start,
                       workers=args.workers,
                       runs_added=len(study.load_rows(args.out)) - before)
        if not finished:
            session['interrupted'] = True
        study.append_row(sessions_file(args.out), session)
    print(f'{len(rows)} current runs in {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
