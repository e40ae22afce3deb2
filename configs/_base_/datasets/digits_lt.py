# Long-tailed digits: scikit-learn's bundled 8x8 digits (real data, shipped
# with the package), train split made long-tailed with the exponential
# CIFAR-LT profile (imbalance ratio 0.01: 124 ... 1 images per class, 304 in
# all), balanced test split (50 per class).
data_preprocessor = dict(
    num_classes=10,
    # ink levels 0..16 scaled to 0..255: mean and std of the digits pixels
    mean=[78.1],
    std=[96.2],
    to_rgb=False,
)

train_pipeline = [
    dict(type='RandomCrop', crop_size=8, padding=1),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(
        type='LongTailDataset',
        dataset=dict(type='Digits', split='train', pipeline=train_pipeline),
        imbalance_ratio=0.01,
        profile='exp',
        n_max='smallest',  # 124: every class reaches its target exactly
        seed=0,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=100,
    num_workers=1,
    dataset=dict(type='Digits', split='test', pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Shot groups scaled to a 124-image head class: many > 50 (2 classes),
# medium 10-50 (3), few < 10 (5). The metric counts the training labels once
# from this copy of the training set: when you change the imbalance ratio on
# the command line, change it here too
# (val_evaluator.1.train_dataset.imbalance_ratio).
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(
        type='LongTailAccuracy',
        train_dataset=train_dataloader['dataset'],
        many_thr=50,
        few_thr=10),
]

test_dataloader = val_dataloader
test_evaluator = val_evaluator
