# What classifier re-training (cRT, Kang et al., ICLR 2020) adds to a
# cross-entropy config; a cRT config lists it beside its stage-1 config:
#   _base_ = ['./resnet32_digitslt_ce.py', '_base_/crt.py']
#   train_dataloader = dict(sampler=_base_.crt_sampler)
#   custom_hooks = _base_.custom_hooks + [_base_.crt_freeze_hook]
# (names that a stage-1 config does not have, so the two bases do not
# clash). Stage 2 freezes backbone and neck (weights and BatchNorm
# statistics), re-initialises the head and trains it alone with
# class-balanced sampling.
crt_sampler = dict(_delete_=True, type='ClassBalancedSampler')
crt_freeze_hook = dict(
    type='FreezeModulesHook',
    modules=['backbone', 'neck'],
    reinit_modules=['head'])
# Frozen parameters get no gradient; DDP must be told.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
