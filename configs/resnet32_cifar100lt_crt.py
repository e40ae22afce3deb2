# Classifier re-training (cRT, Kang et al., ICLR 2020): stage 2 of
# resnet32_cifar100lt_ce.py (see _base_/crt.py), without Mixup, for 10
# cosine epochs.
#   python tools/train.py configs/resnet32_cifar100lt_ce.py        # stage 1
#   python tools/train.py configs/resnet32_cifar100lt_crt.py \
#       [--cfg-options load_from=OTHER_STAGE1.pth]                  # stage 2
_base_ = ['./resnet32_cifar100lt_ce.py', '_base_/crt.py']

load_from = 'work_dirs/resnet32_cifar100lt_ce/epoch_200.pth'
model = dict(train_cfg=dict(_delete_=True))  # no Mixup in stage 2
train_dataloader = dict(sampler=_base_.crt_sampler)
custom_hooks = _base_.custom_hooks + [_base_.crt_freeze_hook]
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', by_epoch=True, eta_min=0)
train_cfg = dict(max_epochs=10, val_interval=5)
