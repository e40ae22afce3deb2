# Classifier re-training (cRT, Kang et al., ICLR 2020): stage 2 of
# resnet32_cifar100lt_ce.py. Loads the stage-1 checkpoint, freezes backbone
# and neck (weights and BatchNorm statistics), re-initialises the linear
# classifier and trains it alone with class-balanced sampling, without Mixup,
# for 10 cosine epochs.
#   python tools/train.py configs/resnet32_cifar100lt_ce.py        # stage 1
#   python tools/train.py configs/resnet32_cifar100lt_crt.py \
#       [--cfg-options load_from=OTHER_STAGE1.pth]                  # stage 2
_base_ = ['./resnet32_cifar100lt_ce.py']

load_from = 'work_dirs/resnet32_cifar100lt_ce/epoch_200.pth'

model = dict(train_cfg=dict(_delete_=True))  # no Mixup in stage 2

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))

# Appended to the runtime's hooks, which must stay.
custom_hooks = _base_.custom_hooks + [
    dict(
        type='FreezeModulesHook',
        modules=['backbone', 'neck'],
        reinit_modules=['head'])
]
# Frozen parameters get no gradient; DDP must be told.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)

param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    by_epoch=True,
    T_max=10,
    eta_min=0)
train_cfg = dict(max_epochs=10, val_interval=5)
