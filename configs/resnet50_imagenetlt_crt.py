# Classifier re-training (cRT, Kang et al., ICLR 2020): stage 2 of
# resnet50_imagenetlt_ce.py, with their recipe: the stage-1 backbone frozen
# (weights and BatchNorm statistics), the linear classifier re-initialised
# and trained alone for 10 epochs with class-balanced sampling, SGD 0.2 at a
# total batch of 512 (8 GPUs x 64), cosine decay, no Mixup. Kang et al.
# report CE 44.4 -> cRT 49.6 % (ResNeXt-50, 90 epochs).
#   tools/dist_train.sh configs/resnet50_imagenetlt_ce.py 8     # stage 1
#   tools/dist_train.sh configs/resnet50_imagenetlt_crt.py 8 \
#       [--cfg-options load_from=OTHER_STAGE1.pth]               # stage 2
_base_ = ['./resnet50_imagenetlt_ce.py']

load_from = 'work_dirs/resnet50_imagenetlt_ce/epoch_90.pth'

model = dict(train_cfg=dict(_delete_=True))  # no Mixup in stage 2

train_dataloader = dict(
    batch_size=64, sampler=dict(_delete_=True, type='ClassBalancedSampler'))

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

optim_wrapper = dict(optimizer=dict(lr=0.2))
param_scheduler = dict(T_max=10)
train_cfg = dict(max_epochs=10, val_interval=5)
auto_scale_lr = dict(base_batch_size=512)
