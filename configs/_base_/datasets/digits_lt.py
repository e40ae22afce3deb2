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
# The test pipeline also serves image files (MMPretrain's
# ImageClassificationInferencer / FeatureExtractor / inference_model read
# them as 3-channel BGR): gray = (B + 2G + R) / 4, exact for gray images,
# then 8x8 (area interpolation). On the dataset's own 8x8x1 arrays both steps
# leave every pixel unchanged, so validation and test results are those of a
# bare PackInputs. Images must show light ink on a dark background, like the
# training data.
test_pipeline = [
    dict(type='RandomGrayscale', prob=1.0, channel_weights=(1, 2, 1)),
    dict(type='Resize', scale=(8, 8), interpolation='area'),
    dict(type='PackInputs'),
]

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
# Shot groups scaled to a 124-image head class: many > 50 (2 classes at ratio
# 0.01), medium 10-50 (3), few < 10 (5), counted from the training set the
# run uses (ClassCountsHook), so they follow --cfg-options changes of it.
# Beside the accuracies: calibration (ECE/MCE over 15 bins, NLL) per shot
# group, and the accuracy under forward/backward long-tailed test label
# distributions (docs/long_tail_eval.md).
val_evaluator = [
    dict(type='Accuracy', topk=(1, )),
    dict(type='LongTailAccuracy', many_thr=50, few_thr=10),
    dict(type='LongTailCalibration', many_thr=50, few_thr=10),
    dict(type='LabelShiftAccuracy'),
]

test_dataloader = val_dataloader
test_evaluator = val_evaluator
