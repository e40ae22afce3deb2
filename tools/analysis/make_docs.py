"""Regenerate docs/results.md, docs/results_ufm.md, docs/baselines.md and
their figures (docs/figures/) from the per-run files in docs/data/.

    python tools/analysis/make_docs.py [--data-dir docs/data] [--docs-dir docs]

Runs nothing: it reads what tools/analysis/digits_study.py and
tools/analysis/ufm_simulation.py wrote (seconds).
"""
import argparse
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# research/ sits beside the package in a clone; it is not installed.
sys.path.insert(0, REPO_ROOT)

from research.report import render_all  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', default='docs/data')
    parser.add_argument('--docs-dir', default='docs')
    args = parser.parse_args(argv)
    render_all(args.data_dir, args.docs_dir)
    print(f'wrote {args.docs_dir}/results.md, results_ufm.md, baselines.md '
          f'and figures/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
