"""``FreezeModulesHook``: train only part of a model, e.g. classifier
re-training (cRT) on a frozen representation."""
from typing import List, Sequence

from mmengine.hooks import Hook
from mmengine.model import BaseModule, is_model_wrapper
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS
from torch import nn

from etf_plugin.utils import unwrap_model


@HOOKS.register_module()
class FreezeModulesHook(Hook):
    """Freeze some submodules of the model and re-initialise others.

    A frozen module gets ``requires_grad=False`` on all its parameters (so
    the optimizer never updates them: they get no gradient) and is put in
    eval mode before every training iteration (the training loop calls
    ``model.train()`` at every epoch start, which would let BatchNorm running
    statistics move). A learning-rate multiplier of 0 in ``paramwise_cfg``
    does not freeze: BatchNorm running statistics still change, and the
    frozen part still pays for its backward pass.

    Modules in ``reinit_modules`` are initialised from scratch at the start
    of a fresh run (iteration 0, after ``load_from`` was loaded): PyTorch's
    ``reset_parameters`` on every submodule that has one, then the module's
    own ``init_weights`` (its ``init_cfg``), exactly as when the model is
    built. A resumed run (``--resume``) keeps the trained values.

    Classifier re-training (cRT, Kang et al., ICLR 2020) from a stage-1
    checkpoint::

        load_from = 'work_dirs/stage1/epoch_60.pth'
        custom_hooks = _base_.custom_hooks + [  # keep the runtime's hooks
            dict(type='FreezeModulesHook', modules=['backbone', 'neck'],
                 reinit_modules=['head'])
        ]

    Distributed training: parameters frozen after the model was wrapped in
    ``DistributedDataParallel`` receive no gradient, which DDP accepts only
    with ``model_wrapper_cfg=dict(type='MMDistributedDataParallel',
    find_unused_parameters=True)``; the hook raises otherwise.

    Args:
        modules (Sequence[str]): Names of the submodules to freeze, as in
            ``model.get_submodule`` (e.g. ``'backbone'``,
            ``'backbone.layer1'``).
        reinit_modules (Sequence[str]): Names of the submodules to
            re-initialise at the start of a fresh run. Defaults to ().
    """
    priority = 'NORMAL'

    def __init__(
        self, modules: Sequence[str],
        reinit_modules: Sequence[str] = ()) -> None:
        if isinstance(modules, str) or isinstance(reinit_modules, str):
            raise TypeError('modules and reinit_modules must be lists of '
                            'module names, e.g. modules=["backbone"].')
        self.modules = list(modules)
        self.reinit_modules = list(reinit_modules)
        overlap = set(self.modules) & set(self.reinit_modules)
        if overlap:
            raise ValueError(f'{sorted(overlap)} cannot be both frozen and '
                             f're-initialised.')

    def before_train(self, runner: Runner) -> None:
        """Freeze the parameters; re-initialise at a fresh start."""
        wrapper = runner.model
        if is_model_wrapper(wrapper) and not getattr(
                wrapper, 'find_unused_parameters', True):
            raise ValueError(
                'FreezeModulesHook under DistributedDataParallel needs '
                "model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
                'find_unused_parameters=True) in the config: the frozen '
                'parameters get no gradient.')
        for module in self._get(runner, self.modules):
            for param in module.parameters():
                param.requires_grad_(False)
        if runner.iter == 0:
            for module in self._get(runner, self.reinit_modules):
                reinitialize(module)

    def before_train_iter(self,
                          runner: Runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Put the frozen modules back in eval mode (BatchNorm, Dropout)."""
        for module in self._get(runner, self.modules):
            module.eval()

    @staticmethod
    def _get(runner: Runner, names: Sequence[str]) -> List[nn.Module]:
        """The submodules of the (unwrapped) model with these names."""
        model = unwrap_model(runner.model)
        modules = []
        for name in names:
            try:
                modules.append(model.get_submodule(name))
            except AttributeError as error:
                children = [child for child, _ in model.named_children()]
                raise ValueError(
                    f'FreezeModulesHook: the model has no submodule '
                    f'{name!r}; its top-level modules are {children}.'
                ) from error
        return modules


def reinitialize(module: nn.Module) -> None:
    """Initialise ``module`` from scratch, as when it was built: PyTorch's
    ``reset_parameters`` on every submodule that has it, then mmengine's
    ``init_weights`` (the ``init_cfg`` of the module and its children).

    Args:
        module (nn.Module): The module, changed in place (the parameter
            tensors stay the same objects, so an optimizer keeps them).
    """
    for submodule in module.modules():
        if hasattr(submodule, 'reset_parameters'):
            submodule.reset_parameters()
        if isinstance(submodule, BaseModule):
            # mmengine initialises a module once; allow a second time.
            submodule._is_init = False
    if hasattr(module, 'init_weights'):
        module.init_weights()
