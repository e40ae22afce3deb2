"""One process of a torchrun job (tools/dist_train.sh, tools/dist_test.sh):

    python tools/dist_worker.py SCRIPT [ARGS ...]

runs ``python SCRIPT ARGS`` as a child with the same environment, output and
exit status, and forwards the launcher's stop signals to it with a SIGCONT
first.

Why: when one process fails, torchrun stops the others with SIGTERM and
waits up to 30 s before it sends SIGKILL. A *stopped* process (SIGSTOP, a
frozen job step, a debugger) does not act on SIGTERM until it is continued,
so a job with a frozen rank would take the collective timeout
(``env_cfg.dist_cfg.timeout``) plus those 30 s to end. With the SIGCONT the
frozen process ends at once, and the job ends within the timeout.

With ``ETF_DIST_STATUS_DIR`` set (tools/dist_train.sh sets it), the child's
exit status is also written to ``rank-$RANK`` there: torchrun reports 1 for
a job it stopped or that failed, and the launcher needs to tell a run that
saved on a stop signal (status 75, ``PreemptionHook``) from a failure.
"""
import os
import signal
import subprocess
import sys

FORWARDED = ('SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2')


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    # -u as torchrun runs its scripts: output reaches the log at once
    child = subprocess.Popen([sys.executable, '-u', *argv])

    def forward(signum, frame):
        try:
            child.send_signal(signal.SIGCONT)
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for name in FORWARDED:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), forward)
    status = child.wait()
    status_dir = os.environ.get('ETF_DIST_STATUS_DIR')
    if status_dir:
        path = os.path.join(status_dir, f'rank-{os.environ.get("RANK", 0)}')
        with open(path, 'w') as f:
            f.write(f'{status}\n')
    if status < 0:  # killed by a signal: end the same way
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
