"""Build shim: all metadata is in pyproject.toml.

The one thing pyproject.toml cannot say is MMPretrain's `.mim` layout: the
configs, tools, model index and shipped checkpoints travel inside the
package as ``etf_plugin/.mim/{configs,tools,model-index.yml,checkpoints}``,
so that an installed wheel carries them (``mim train etf_plugin CONFIG``,
``mim train mmpretrain <site-packages>/etf_plugin/.mim/configs/CONFIG``,
``etf_plugin::CONFIG`` bases, ``mmpretrain.get_model`` names).

- wheel / ``pip install .``: copied into the build directory (the source
  tree is left alone);
- editable (``pip install -e .``): relative symlinks in the source package
  (``etf_plugin/.mim/configs -> ../../configs``), so edits show at once.
"""
import os
import os.path as osp
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

MIM_ITEMS = ('configs', 'tools', 'model-index.yml', 'checkpoints')
ROOT = osp.dirname(osp.abspath(__file__))


def _remove(path):
    if osp.islink(path) or osp.isfile(path):
        os.remove(path)
    elif osp.isdir(path):
        shutil.rmtree(path)


class BuildPyWithMim(build_py):
    """``build_py`` that also lays out ``etf_plugin/.mim``."""

    def run(self):
        super().run()
        if self.editable_mode:
            self._link_mim(osp.join(ROOT, 'etf_plugin', '.mim'))
        else:
            self._copy_mim(osp.join(self.build_lib, 'etf_plugin', '.mim'))

    @staticmethod
    def _link_mim(mim):
        os.makedirs(mim, exist_ok=True)
        for item in MIM_ITEMS:
            # also for a missing item (a dangling link until it exists)
            source, target = osp.join(ROOT, item), osp.join(mim, item)
            _remove(target)
            os.symlink(osp.relpath(source, mim), target)

    @staticmethod
    def _copy_mim(mim):
        _remove(mim)
        os.makedirs(mim)
        for item in MIM_ITEMS:
            source, target = osp.join(ROOT, item), osp.join(mim, item)
            if osp.isdir(source):
                shutil.copytree(
                    source, target,
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            elif osp.isfile(source):
                shutil.copy2(source, target)


setup(cmdclass={'build_py': BuildPyWithMim})
