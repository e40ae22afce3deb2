"""etf_plugin's model zoo in MMPretrain's ``ModelHub``.

Importing ``etf_plugin`` registers ``model-index.yml`` (and through it every
``configs/*/metafile.yml``), so MMPretrain's own APIs know our models::

    import etf_plugin  # noqa: F401
    from mmpretrain import get_model, inference_model, list_models

    list_models('*etf*')       # ['resnet32_digitslt_etf', ...]
    model = get_model('resnet32_digitslt_etf', pretrained=True)
    inference_model(model, 'digit.png')

Nothing is downloaded. A model whose metafile gives ``Weights`` as a path
relative to the model index (e.g. ``checkpoints/....pth``, shipped inside
the package) loads it from there; the others (ImageNet-LT, CIFAR-LT: not
trained here) build untrained, or load a local file given as
``get_model(name, pretrained='/path/to/epoch_90.pth')``.

The files live in ``etf_plugin/.mim`` (``configs/``, ``tools/``,
``checkpoints/``, ``model-index.yml``), laid out by ``setup.py`` as in
MMPretrain: copied into a built wheel, symlinked into the source tree by an
editable install. A source checkout used through ``PYTHONPATH`` alone falls
back to the repository root.

Run ``python -m etf_plugin.apis CONFIG_NAME`` to print where a config is,
e.g. ``mim train mmpretrain $(python -m etf_plugin.apis
resnet32_digitslt_etf.py)``.
"""
import os
import os.path as osp
import sys
import warnings
from typing import List

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
MODEL_INDEX = 'model-index.yml'

_registered: List[str] = []


def mim_dir() -> str:
    """The directory holding ``configs/``, ``tools/``, ``checkpoints/`` and
    ``model-index.yml``: ``etf_plugin/.mim`` of an installed package, else
    the root of the source checkout this package is imported from.

    Raises:
        FileNotFoundError: If neither has a ``model-index.yml``.
    """
    candidates = [osp.join(PACKAGE_DIR, '.mim'), osp.dirname(PACKAGE_DIR)]
    for root in candidates:
        if osp.isfile(osp.join(root, MODEL_INDEX)):
            return root
    raise FileNotFoundError(
        f'No {MODEL_INDEX} in {" or ".join(candidates)}: reinstall '
        f'etf_plugin (`pip install .` or `pip install -e .` from its '
        f'source checkout).')


def get_config_path(name: str) -> str:
    """Absolute path of a config shipped with the package.

    Args:
        name (str): The config's path under ``configs/``, e.g.
            ``'resnet32_digitslt_etf.py'`` (the ``.py`` may be left out).

    Returns:
        str: The path, for MMPretrain's tools, ``mim train mmpretrain`` or
        ``Config.fromfile``.
    """
    if not name.endswith('.py'):
        name += '.py'
    path = osp.join(mim_dir(), 'configs', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'etf_plugin has no config {name!r} '
                                f'(looked for {path}).')
    return osp.realpath(path)


def register_model_zoo() -> List[str]:
    """Register the model index with ``mmpretrain.apis.ModelHub`` (once).

    Config paths are resolved against :func:`mim_dir`, and so are relative
    ``Weights`` paths (MMPretrain would read those relative to the current
    directory).

    Returns:
        list[str]: The names registered.
    """
    if _registered:
        return list(_registered)
    from mmpretrain.apis import ModelHub

    root = mim_dir()
    before = set(ModelHub._models_dict)
    ModelHub.register_model_index(
        osp.join(root, MODEL_INDEX), config_prefix=root)
    names = sorted(set(ModelHub._models_dict) - before)
    for name in names:
        metainfo = ModelHub._models_dict[name]
        weights = metainfo.weights
        if weights and '://' not in weights and not osp.isabs(weights):
            metainfo.weights = osp.join(root, weights)
    _registered.extend(names)
    return names


def _register_on_import() -> None:
    # A broken model index must not make the plugin unimportable: training
    # and testing do not need it.
    try:
        register_model_zoo()
    except Exception as error:  # noqa: BLE001
        warnings.warn(f'etf_plugin: its model zoo is not registered with '
                      f'mmpretrain.list_models/get_model ({error!r}).')


def main(argv=None) -> int:
    """``python -m etf_plugin.apis [CONFIG_NAME ...]``: print config paths
    (or, without arguments, the registered model names)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(os.linesep.join(register_model_zoo()))
        return 0
    for name in argv:
        print(get_config_path(name))
    return 0


if __name__ == '__main__':
    # `python -m etf_plugin.apis` runs this file a second time as __main__;
    # use the module the package import registered.
    from etf_plugin.apis import main as _main
    sys.exit(_main())
else:
    _register_on_import()
