# The runtime of the digits demo: the shared one, plus what makes a small
# CPU run fast and bit-reproducible (one PyTorch thread, deterministic
# kernels, a fixed seed), a checkpoint every 10 epochs and a log line every
# 5 iterations (two per epoch: analyze_logs.py cal_train_time drops the
# first of each epoch). OMP_NUM_THREADS=N in the environment overrides the thread
# count (the result may then differ in the last bits).
_base_ = ['./default_runtime.py']

default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=10))
custom_hooks = _base_.custom_hooks + [dict(type='CPUThreadsHook')]
randomness = dict(seed=0, deterministic=True)
