"""How long a run takes from a stop signal to its exit, with PreemptionHook
saving the iteration it was in.

Each setting trains ``configs/resnet32_digitslt_etf.py`` (long enough not to
end by itself), waits until epoch 1's checkpoint is written and a little
more, so the signal lands mid-epoch, sends SIGTERM to the job (the
launcher's process, as ``kill`` or a scheduler does) and times the exit.
It checks each run exited with status 75 and left ``last_checkpoint``
naming an ``iter_N.pth``. The table shows the median and the range over
``--repeats`` rounds:

* ``tools/train.py``: one process;
* ``tools/dist_train.sh 2``: torchrun with two gloo processes (the signal
  passes through the script and torchrun to both).

Usage::

    python benchmarks/preemption_exit_time.py              # 3 rounds
    python benchmarks/preemption_exit_time.py --repeats 5
"""
import argparse
import os
import os.path as osp
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py')
OPTIONS = ['train_cfg.max_epochs=60', 'default_hooks.checkpoint.interval=1']
PREEMPTED = 75


def command(setting, work_dir):
    if setting == 'tools/train.py':
        return [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
                CONFIG]
    return ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), CONFIG,
            '2']


def time_one(setting, port):
    with tempfile.TemporaryDirectory() as work_dir:
        env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
                   PORT=str(port),
                   PYTHONPATH=os.pathsep.join(
                       [REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
        with open(osp.join(work_dir, 'log'), 'w') as log:
            job = subprocess.Popen(
                command(setting, work_dir) +
                ['--work-dir', work_dir, '--cfg-options', *OPTIONS],
                env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            while not osp.exists(osp.join(work_dir, 'epoch_1.pth')):
                if job.poll() is not None:
                    sys.exit(f'{setting} ended early; see the log in '
                             f'{work_dir}')
                time.sleep(0.02)
            time.sleep(0.3)  # into epoch 2
            signalled = time.monotonic()
            job.send_signal(signal.SIGTERM)
            status = job.wait(300)
            seconds = time.monotonic() - signalled
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            saved = osp.basename(f.read())
    if status != PREEMPTED or not saved.startswith('iter_'):
        sys.exit(f'{setting}: exit status {status}, last checkpoint {saved}')
    return seconds, saved


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    settings = ['tools/train.py', 'tools/dist_train.sh 2']
    times = {s: [] for s in settings}
    for round_ in range(args.repeats):
        for setting in settings:
            seconds, saved = time_one(setting, 29700 + round_)
            times[setting].append(seconds)
            print(f'round {round_ + 1}, {setting}: exit {PREEMPTED} '
                  f'{seconds:.2f} s after SIGTERM, saved {saved}',
                  flush=True)
    print('\n| launcher | SIGTERM -> exit, median (s) | range (s) | '
          'ratio |')
    print('| --- | --- | --- | --- |')
    first = statistics.median(times[settings[0]])
    for setting in settings:
        median = statistics.median(times[setting])
        print(f'| {setting} | {median:.2f} | {min(times[setting]):.2f} - '
              f'{max(times[setting]):.2f} | {median / first:.2f} |')


if __name__ == '__main__':
    main()
