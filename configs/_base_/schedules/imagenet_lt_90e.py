# The ImageNet-LT recipe of Yang et al. (as released): SGD 0.1, momentum 0.9,
# weight decay 5e-4, total batch 1024, 90 epochs of cosine decay to 0 (the
# period is the run's length: T_max defaults to max_epochs).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))

param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, eta_min=0)

train_cfg = dict(by_epoch=True, max_epochs=90, val_interval=5)
val_cfg = dict()
test_cfg = dict()

# lr 0.1 is for 8 GPUs x 128 images; --auto-scale-lr rescales other setups.
auto_scale_lr = dict(base_batch_size=1024)
