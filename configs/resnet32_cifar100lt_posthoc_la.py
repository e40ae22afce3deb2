# Post-hoc logit adjustment (Menon et al., ICLR 2021) of a model trained with
# resnet32_cifar100lt_ce.py, no retraining:
#   python tools/test.py configs/resnet32_cifar100lt_posthoc_la.py \
#       work_dirs/resnet32_cifar100lt_ce/epoch_200.pth
# The prior is counted from this copy of the training set config
# (model.head.train_dataset.*); see docs/baselines.md.
_base_ = ['./resnet32_cifar100lt_ce.py']

model = dict(
    head=dict(
        type='PostHocLogitAdjustedHead',
        posthoc_tau=1.0,
        train_dataset=_base_.train_dataloader.dataset))
