# CIFAR-100-LT: cifar10_lt.py on CIFAR-100 (500 ... 5 per class at imbalance
# ratio 0.01, 10,847 images). Expects data/cifar100/cifar-100-python.
_base_ = ['./cifar10_lt.py']

# MMPretrain's CIFAR-100 statistics (mmpretrain::_base_/datasets/
# cifar100_bs16.py); a config cannot inherit both CIFAR bases.
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418])

cifar100 = dict(type='CIFAR100', data_root='data/cifar100')
train_dataloader = dict(dataset=dict(dataset=cifar100))
val_dataloader = dict(dataset=cifar100)
test_dataloader = val_dataloader
