# Test-only config (tests/distributed): the digits-LT demo plus the probes of
# dist_check_hooks.py, which tests/distributed puts on PYTHONPATH. The probes that
# break things act only when their environment variable is set.
_base_ = ['../../configs/resnet32_digitslt_etf.py']

custom_imports = dict(
    imports=['etf_plugin', 'dist_check_hooks'], allow_failed_imports=False)

custom_hooks = _base_.custom_hooks + [
    dict(type='RecordRankStateHook'),
    dict(type='FailOnRankHook'),
    dict(type='PerturbETFOnRankHook'),
    # 303 of the 304 training images: the ranks measure 152 and 151.
    dict(
        type='NeuralCollapseHook',
        interval=2,
        max_samples=303,
        plot_file=None),
    dict(type='NeuralCollapseAtTestHook', max_samples=303, plot_file=None),
]

# 499 of the 500 test images, so that the 2-process sampler pads a sample
# that the metrics must drop.
val_dataloader = dict(dataset=dict(indices=499))
test_dataloader = dict(dataset=dict(indices=499))

# Every statistic the tests compare between 1 and 2 processes.
test_evaluator = [
    dict(type='Accuracy', topk=(1, 5)),
    dict(
        type='LongTailAccuracy',
        topk=(1, 5),
        many_thr=50,
        few_thr=10,
        per_class=True),
]
