"""etf_plugin's model zoo in MMPretrain's ``ModelHub``, on request.

:func:`register_model_zoo` registers ``model-index.yml`` (and through it
every ``configs/*/metafile.yml``) with MMPretrain's public
``ModelHub.register_model_index``, so MMPretrain's own APIs know our
models. Importing ``etf_plugin`` does not do it (a plugin's import only
registers classes)::

    from etf_plugin.apis import register_model_zoo
    from mmpretrain import get_model, inference_model, list_models

    register_model_zoo()
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
import tempfile
from typing import List

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
MODEL_INDEX = 'model-index.yml'


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


def _is_local_relative(path: str) -> bool:
    return '://' not in path and not osp.isabs(path)


def _resolved_model_index(root: str, folder: str) -> tuple:
    """Write ``folder/model-index.yml``: the models of ``root``'s model
    index in one file, with the ``Config``, ``README`` and local ``Weights``
    paths made absolute (MMPretrain would read relative weights against the
    current directory).

    Returns:
        tuple: The file's path and the model names (lower case, as
        ``ModelHub`` keys them).
    """
    import yaml
    with open(osp.join(root, MODEL_INDEX)) as f:
        metafiles = yaml.safe_load(f)['Import']
    collections, models = [], []
    for metafile in metafiles:
        with open(osp.join(root, metafile)) as f:
            content = yaml.safe_load(f)
        for entry in content.get('Collections', []) + content.get(
                'Models', []):
            for key in ('Config', 'README', 'Weights'):
                if entry.get(key) and _is_local_relative(entry[key]):
                    entry[key] = osp.join(root, entry[key])
        collections += content.get('Collections', [])
        models += content.get('Models', [])
    path = osp.join(folder, MODEL_INDEX)
    with open(path, 'w') as f:
        yaml.safe_dump(dict(Collections=collections, Models=models), f)
    return path, sorted(model['Name'].lower() for model in models)


def register_model_zoo() -> List[str]:
    """Register the model index with ``mmpretrain.apis.ModelHub`` through
    its public ``register_model_index`` (once per process; a second call
    only returns the names).

    Returns:
        list[str]: The names registered.
    """
    from mmpretrain.apis import ModelHub

    root = mim_dir()
    with tempfile.TemporaryDirectory() as folder:
        index, names = _resolved_model_index(root, folder)
        if not all(ModelHub.has(name) for name in names):
            ModelHub.register_model_index(index)
    return names


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
    sys.exit(main())
