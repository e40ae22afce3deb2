# Post-hoc logit adjustment (Menon et al., ICLR 2021) of a model trained with
# resnet50_imagenetlt_ce.py, no retraining, with the prior the checkpoint
# was trained with:
#   tools/dist_test.sh configs/resnet50_imagenetlt_posthoc_la.py \
#       work_dirs/resnet50_imagenetlt_ce/epoch_90.pth 8
_base_ = ['./resnet50_imagenetlt_ce.py']

model = dict(head=dict(type='PostHocLogitAdjustedHead', posthoc_tau=1.0))
