# Post-hoc logit adjustment (Menon et al., ICLR 2021) of a model trained with
# resnet32_cifar100lt_ce.py, no retraining, with the prior the checkpoint
# was trained with:
#   python tools/test.py configs/resnet32_cifar100lt_posthoc_la.py \
#       work_dirs/resnet32_cifar100lt_ce/epoch_200.pth
_base_ = ['./resnet32_cifar100lt_ce.py']

model = dict(head=dict(type='PostHocLogitAdjustedHead', posthoc_tau=1.0))
