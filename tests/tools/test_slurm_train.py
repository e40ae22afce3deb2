"""tools/slurm_train.sh and its batch script under stand-ins for sbatch,
srun and scontrol (defined below):

* the submission asks for the warning signal, requeueing and an appended
  log, and the job always trains with ``--resume``;
* the batch script requeues the job after a SIGUSR1 (time-limit warning)
  that ended the step with status 75, and not after a SIGTERM (scancel,
  or a preemption that Slurm requeues itself) or a normal end;
* for real, with tools/train.py as the one task (gloo): SIGUSR1 to the
  batch script -> the iteration is saved -> status 75 -> requeue; the
  requeued job (the same script again) resumes at the next batch and ends.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from etf_plugin.engine.hooks.preemption_hook import PREEMPTED_EXIT_CODE
from helpers import REPO_ROOT, free_port

HERE = osp.dirname(osp.abspath(__file__))
TOOLS = osp.join(REPO_ROOT, 'tools')
CONFIG = osp.join(HERE, 'fault_config.py')
JOB_ID = '4242'

# Records its arguments and answers like sbatch.
FAKE_SBATCH = '''#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_LOG_DIR/sbatch_args"
echo "Submitted batch job {job_id}"
'''
# `show hostname(s)` prints the one node; `requeue ID` is recorded.
FAKE_SCONTROL = '''#!/bin/sh
case "$1" in
  show) echo 127.0.0.1 ;;
  *) echo "$@" >> "$FAKE_LOG_DIR/scontrol" ;;
esac
'''
# srun for one task: records its arguments, runs the command with Slurm's
# variables and passes SIGUSR1 and SIGTERM on to it, as srun does.
FAKE_SRUN = '''#!{python}
import os, signal, subprocess, sys
args = sys.argv[1:]
with open(os.path.join(os.environ['FAKE_LOG_DIR'], 'srun_args'), 'w') as f:
    f.write('\\n'.join(args))
while args[0].startswith('-'):
    args.pop(0)
task = subprocess.Popen(args, env=dict(
    os.environ, SLURM_PROCID='0', SLURM_LOCALID='0', SLURM_NTASKS='1',
    SLURM_NODELIST='node-0'))
for name in ('SIGUSR1', 'SIGTERM'):
    signal.signal(getattr(signal, name),
                  lambda signum, frame: task.send_signal(signum))
sys.exit(task.wait())
'''
# A stand-in for python: says it started, then waits for a signal and
# exits with status 75, as a run with PreemptionHook does (at once with
# FAKE_EXIT=75: a signal that reached the tasks only).
FAKE_PYTHON = '''#!/bin/bash
trap 'exit 75' USR1 TERM
[ -n "${{FAKE_EXIT:-}}" ] && exit "$FAKE_EXIT"
touch "$FAKE_LOG_DIR/started"
for _ in $(seq 600); do sleep 0.1; done
'''


@pytest.fixture
def slurm(tmp_path):
    """A PATH with the stand-ins first, and the folder they log to."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('sbatch', FAKE_SBATCH), ('scontrol', FAKE_SCONTROL),
                       ('srun', FAKE_SRUN), ('fake_python', FAKE_PYTHON)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable, job_id=JOB_ID))
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith('ETF_')}
    env.update(
        PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}', FAKE_LOG_DIR=str(tmp_path),
        SLURM_JOB_ID=JOB_ID, ETF_TOOLS=TOOLS, OMP_NUM_THREADS='1',
        MASTER_PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join([HERE, REPO_ROOT,
                                    env.get('PYTHONPATH', '')]))
    return env, tmp_path


def start_job(env, work_dir, *args):
    return subprocess.Popen(
        ['bash', osp.join(TOOLS, 'slurm_train_job.sh'), CONFIG,
         str(work_dir), *args], env=env, cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not osp.exists(path):
        assert process.poll() is None, process.communicate()[0][-4000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def requeued(log_dir):
    path = log_dir / 'scontrol'
    return path.read_text().split('\n')[0] if path.exists() else None


def test_submits_a_requeueable_job_that_resumes(slurm):
    env, log_dir = slurm
    env.update(GPUS='16', GPUS_PER_NODE='8', SBATCH_ARGS='--time=24:00:00')
    work_dir = log_dir / 'work'
    result = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_train.sh'), 'part', 'job', CONFIG,
         str(work_dir), '--amp'], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    args = (log_dir / 'sbatch_args').read_text().split('\n')[:-1]
    assert args[:2] == ['-p', 'part']
    assert {'--job-name=job', '--ntasks=16', '--ntasks-per-node=8',
            '--gres=gpu:8', '--requeue', '--signal=B:USR1@120',
            '--open-mode=append', f'--output={work_dir}/slurm-%j.out',
            '--time=24:00:00'} <= set(args)
    assert args[-4:] == [
        osp.join(TOOLS, 'slurm_train_job.sh'), CONFIG, str(work_dir), '--amp'
    ]


@pytest.mark.parametrize('signum, requeues', [(signal.SIGUSR1, True),
                                              (signal.SIGTERM, False),
                                              (None, False)])
def test_batch_script_requeues_after_the_time_limit_warning_only(
        slurm, signum, requeues):
    env, log_dir = slurm
    env['PYTHON'] = str(log_dir / 'bin' / 'fake_python')
    if signum is None:  # the tasks alone were signalled
        env['FAKE_EXIT'] = str(PREEMPTED_EXIT_CODE)
    job = start_job(env, log_dir / 'work', '--amp')
    if signum is not None:
        wait_for(log_dir / 'started', job)
        job.send_signal(signum)
    output = job.communicate(timeout=60)[0]
    assert job.returncode == PREEMPTED_EXIT_CODE, output
    srun_args = (log_dir / 'srun_args').read_text().split('\n')
    assert '--kill-on-bad-exit=1' in srun_args
    assert srun_args[srun_args.index('-u') + 1:] == [
        osp.join(TOOLS, 'train.py'), CONFIG, f'--work-dir={log_dir}/work',
        '--launcher=slurm', '--resume', '--amp'
    ]
    assert requeued(log_dir) == (f'requeue {JOB_ID}' if requeues else None)


@pytest.mark.slow
def test_time_limit_warning_saves_requeues_and_the_requeued_job_resumes(
        slurm):
    env, log_dir = slurm
    work_dir = log_dir / 'work'
    options = ['--cfg-options', 'train_cfg.max_epochs=2',
               'train_cfg.val_interval=2']
    job = start_job(dict(env, ETF_FAULT_PAUSE_AT='2:3'), work_dir, *options)
    wait_for(work_dir / 'paused_1', job)
    job.send_signal(signal.SIGUSR1)
    output = job.communicate(timeout=300)[0]
    assert job.returncode == PREEMPTED_EXIT_CODE, output[-4000:]
    assert 'PreemptionHook: SIGUSR1 received' in output
    assert requeued(log_dir) == f'requeue {JOB_ID}'
    # 10 iterations per epoch: epoch 2, batch 3 is iteration 13
    assert (work_dir / 'last_checkpoint').read_text() == \
        str(work_dir / 'iter_13.pth')

    (log_dir / 'scontrol').unlink()
    job = start_job(env, work_dir, *options)  # what Slurm runs again
    output = job.communicate(timeout=300)[0]
    assert job.returncode == 0, output[-4000:]
    assert 'resumed epoch: 1, iter: 13' in output
    assert 'continuing epoch 2 after batch 3' in output
    assert (work_dir / 'epoch_2.pth').exists()
    assert requeued(log_dir) is None
