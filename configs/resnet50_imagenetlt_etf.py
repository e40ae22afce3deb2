# ResNet-50 + fixed simplex ETF + dot-regression loss on ImageNet-LT, with the
# released recipe of Yang et al. (NeurIPS 2022): 8 GPUs x 128 images, SGD 0.1,
# weight decay 5e-4, 90 cosine epochs, Mixup 0.2. Run:
#   tools/dist_train.sh configs/resnet50_imagenetlt_etf.py 8
_base_ = [
    '_base_/models/resnet50_etf.py',
    '_base_/datasets/imagenet_lt.py',
    '_base_/schedules/imagenet_lt_90e.py',
    '_base_/default_runtime.py',
]

model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=0.2)))
