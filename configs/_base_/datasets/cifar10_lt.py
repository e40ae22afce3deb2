# CIFAR-10-LT (Cao et al. 2019 / Cui et al. 2019): MMPretrain's CIFAR-10
# settings, the training split made long-tailed with the exponential profile
# over the class index at imbalance ratio 0.01 (5000 ... 50 per class,
# 12,406 images), the balanced 10,000-image test set. Expects
# data/cifar10/cifar-10-batches-py.
_base_ = ['mmpretrain::_base_/datasets/cifar10_bs16.py']

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    dataset=dict(
        _delete_=True,
        type='LongTailDataset',
        dataset=_base_.train_dataloader.dataset,
        imbalance_ratio=0.01,
        profile='exp',
        seed=0,
    ),
)

val_dataloader = dict(batch_size=256, num_workers=4)
# Many > 100, medium 20-100, few < 20 training images: the standard groups,
# counted from the training set the run uses (ClassCountsHook).
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='LongTailAccuracy', topk=(1, )),
    # Calibration per shot group and the accuracy under shifted test label
    # distributions (docs/long_tail_eval.md).
    dict(type='LongTailCalibration'),
    dict(type='LabelShiftAccuracy'),
]

test_dataloader = val_dataloader
test_evaluator = val_evaluator
