# Test-only config: the shipped digits-LT demo plus FaultInjectionHook
# (tests/tools/fault_hooks.py), which injects a fault only when its
# environment variable is set.
_base_ = ['../../configs/resnet32_digitslt_etf.py']

custom_imports = dict(
    imports=['etf_plugin', 'fault_hooks'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='FaultInjectionHook')]
