# Classifier re-training (cRT, Kang et al., ICLR 2020): stage 2 of
# resnet50_imagenetlt_ce.py (see _base_/crt.py) with their recipe: 10
# epochs, SGD 0.2 at a total batch of 512 (8 GPUs x 64), cosine decay, no
# Mixup. Kang et al. report CE 44.4 -> cRT 49.6 % (ResNeXt-50, 90 epochs).
#   tools/dist_train.sh configs/resnet50_imagenetlt_ce.py 8     # stage 1
#   tools/dist_train.sh configs/resnet50_imagenetlt_crt.py 8 \
#       [--cfg-options load_from=OTHER_STAGE1.pth]               # stage 2
_base_ = ['./resnet50_imagenetlt_ce.py', '_base_/crt.py']

load_from = 'work_dirs/resnet50_imagenetlt_ce/epoch_90.pth'
model = dict(train_cfg=dict(_delete_=True))  # no Mixup in stage 2
train_dataloader = dict(batch_size=64, sampler=_base_.crt_sampler)
custom_hooks = _base_.custom_hooks + [_base_.crt_freeze_hook]
optim_wrapper = dict(optimizer=dict(lr=0.2))
train_cfg = dict(max_epochs=10, val_interval=5)
auto_scale_lr = dict(base_batch_size=512)
