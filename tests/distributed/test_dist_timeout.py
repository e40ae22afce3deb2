"""A frozen rank ends the job: tools/dist_train.sh with 2 CPU processes, rank
1 stopped with SIGSTOP mid-training. Before, the job hung (gloo's default
collective timeout is 30 min; observed > 120 s); now rank 0's next
collective fails after env_cfg.dist_cfg.timeout seconds, tools/train.py
ends that process at once, torchrun stops the job, and tools/dist_worker.py
wakes the stopped process so that it ends at once rather than after
torchrun's extra 30 s."""
import datetime
import os
import os.path as osp
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import REPO_ROOT
from ports import free_port

TOOLS = osp.join(REPO_ROOT, 'tools')
FAULT_DIR = osp.join(REPO_ROOT, 'tests', 'tools')
CONFIG = osp.join(FAULT_DIR, 'fault_config.py')
TIMEOUT = 20  # seconds: env_cfg.dist_cfg.timeout of the test run


@pytest.mark.slow
def test_frozen_rank_ends_the_job_within_the_timeout(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'LOCAL_RANK',
                     'WORLD_SIZE') and not k.startswith('ETF_FAULT_')
    }
    env.update(
        PYTHONPATH=os.pathsep.join(
            [FAULT_DIR, REPO_ROOT, env.get('PYTHONPATH', '')]),
        PYTHON=sys.executable,
        PORT=str(free_port()),
        OMP_NUM_THREADS='1',
        ETF_FAULT_FREEZE='1:2')  # rank 1 stops after iteration 2
    output = tempfile.TemporaryFile(mode='w+')
    job = subprocess.Popen([
        'bash',
        osp.join(TOOLS, 'dist_train.sh'), CONFIG, '2', '--work-dir',
        str(tmp_path), '--cfg-options', 'train_cfg.max_epochs=2',
        f'env_cfg.dist_cfg.timeout={TIMEOUT}'
    ], env=env, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        status = job.wait(timeout=300)  # start-up included
        ended = time.time()
    except subprocess.TimeoutExpired:
        pytest.fail('the job with a frozen rank did not end')
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
        output.seek(0)
        log = output.read()
        output.close()
    frozen_at = float((tmp_path / 'frozen_at').read_text())
    seconds = ended - frozen_at
    print(f'job ended {seconds:.1f} s after rank 1 froze '
          f'(timeout {TIMEOUT} s)')
    assert status != 0, log[-5000:]
    assert f'Timed out waiting {TIMEOUT * 1000}ms' in log, log[-5000:]
    assert TIMEOUT <= seconds < 1.5 * TIMEOUT, log[-3000:]
    # and no process of the job is left (the stopped one included)
    leftover = subprocess.run(['pgrep', '-s', str(job.pid)],
                              capture_output=True, text=True).stdout
    assert not leftover.strip()


def test_timeout_reaches_the_process_group(monkeypatch):
    """env_cfg.dist_cfg.timeout (seconds) is what init_process_group gets on
    CPU (mmengine's init_dist converts it the same way on GPU), and our
    configs set one."""
    import torch
    import torch.distributed as torch_dist
    from mmengine.config import Config

    from etf_plugin.utils import dist

    calls = []
    monkeypatch.setattr(torch_dist, 'init_process_group',
                        lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(torch_dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    dist.init_dist_without_gpu('pytorch', dict(backend='gloo', timeout=20))
    assert calls == [dict(backend='gloo',
                          timeout=datetime.timedelta(seconds=20))]

    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'resnet32_digitslt_etf.py'))
    assert cfg.env_cfg.dist_cfg.timeout == 1800
