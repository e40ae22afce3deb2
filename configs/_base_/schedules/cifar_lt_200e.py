# The CIFAR-LT recipe of Yang et al. (as released): SGD 0.1, momentum 0.9,
# weight decay 2e-4, batch 128, 200 epochs, 5-epoch linear warm-up, x0.1 at
# epochs 160 and 180.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=2e-4))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=5,
        milestones=[160, 180],
        gamma=0.1),
]

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()

# lr 0.1 is for a total batch of 128 (one GPU); --auto-scale-lr rescales it.
auto_scale_lr = dict(base_batch_size=128)
