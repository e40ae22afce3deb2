# Post-hoc logit adjustment (Menon et al., ICLR 2021) of a model trained with
# resnet32_digitslt_ce.py: predictions use logits - tau * log(prior), no
# retraining. Test a CE checkpoint with it:
#   python tools/test.py configs/resnet32_digitslt_posthoc_la.py \
#       work_dirs/resnet32_digitslt_ce/epoch_60.pth \
#       [--cfg-options model.head.posthoc_tau=0.5]
# The prior is counted from this copy of the training set config
# (model.head.train_dataset.*); see docs/baselines.md.
_base_ = ['./resnet32_digitslt_ce.py']

model = dict(
    head=dict(
        type='PostHocLogitAdjustedHead',
        posthoc_tau=1.0,
        train_dataset=_base_.train_dataloader.dataset))
