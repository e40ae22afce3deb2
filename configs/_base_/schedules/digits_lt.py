# Short schedule for the long-tailed digits demo (a minute on a 2-core CPU).
# The cosine period is the run's length (T_max defaults to end, which the
# runner sets to max_epochs), so changing max_epochs keeps the schedule whole.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))

param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, eta_min=0)

train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=10)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=32)
