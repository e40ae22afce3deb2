# Classifier re-training (cRT, Kang et al., ICLR 2020): stage 2 of
# resnet32_digitslt_ce.py (see _base_/crt.py), for 10 epochs.
#   python tools/train.py configs/resnet32_digitslt_ce.py          # stage 1
#   python tools/train.py configs/resnet32_digitslt_crt.py \
#       [--cfg-options load_from=OTHER_STAGE1.pth]                  # stage 2
_base_ = ['./resnet32_digitslt_ce.py', '_base_/crt.py']

load_from = 'work_dirs/resnet32_digitslt_ce/epoch_60.pth'
train_dataloader = dict(sampler=_base_.crt_sampler)
custom_hooks = _base_.custom_hooks + [_base_.crt_freeze_hook]
train_cfg = dict(max_epochs=10, val_interval=5)
