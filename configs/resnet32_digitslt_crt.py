# Classifier re-training (cRT, Kang et al., ICLR 2020): stage 2 of
# resnet32_digitslt_ce.py. Loads the stage-1 checkpoint, freezes backbone and
# neck (weights and BatchNorm statistics), re-initialises the linear
# classifier and trains it alone for 10 epochs with class-balanced sampling.
#   python tools/train.py configs/resnet32_digitslt_ce.py          # stage 1
#   python tools/train.py configs/resnet32_digitslt_crt.py \
#       [--cfg-options load_from=OTHER_STAGE1.pth]                  # stage 2
_base_ = ['./resnet32_digitslt_ce.py']

load_from = 'work_dirs/resnet32_digitslt_ce/epoch_60.pth'

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

param_scheduler = dict(T_max=10)
train_cfg = dict(max_epochs=10, val_interval=5)
