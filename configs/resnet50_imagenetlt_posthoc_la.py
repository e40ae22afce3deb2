# Post-hoc logit adjustment (Menon et al., ICLR 2021) of a model trained with
# resnet50_imagenetlt_ce.py, no retraining:
#   tools/dist_test.sh configs/resnet50_imagenetlt_posthoc_la.py \
#       work_dirs/resnet50_imagenetlt_ce/epoch_90.pth 8
# The prior is counted from the training list (labels only).
_base_ = ['./resnet50_imagenetlt_ce.py']

model = dict(
    head=dict(
        type='PostHocLogitAdjustedHead',
        posthoc_tau=1.0,
        train_dataset=_base_.train_dataloader.dataset))
