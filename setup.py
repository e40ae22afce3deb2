"""etf_plugin: fixed simplex-ETF classifiers and the dot-regression loss for
OpenMMLab (MMPretrain / MMDetection).

Install with ``bash tools/install.sh`` (it builds mmcv 2.1.0 with its ops
first, which pip cannot do on its own for torch 2.14), then this file is used
as ``pip install -e .[tests]``.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    namespace = {}
    with open(osp.join(osp.dirname(__file__), 'etf_plugin', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='etf_plugin',
    version=read_version(),
    description='Fixed simplex-ETF classifier, dot-regression loss, '
    'long-tail data and neural-collapse metrics for OpenMMLab',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['etf_plugin', 'etf_plugin.*']),
    python_requires='>=3.10',
    install_requires=[
        'torch==2.14.1',
        'torchvision==0.29.1',
        'mmengine==0.10.7',
        'mmcv==2.1.0',
        'mmpretrain==1.2.0',
        'mmdet==3.3.0',
        'numpy>=1.24',
        'scikit-learn>=1.3',
        'matplotlib>=3.7',
        'tensorboard>=2.14',
        'tqdm',
        # mmengine 0.10.7 resolves `mmdet::` config bases with pkg_resources,
        # which setuptools 81 removed.
        'setuptools<81',
    ],
    extras_require={
        'tests': ['pytest>=7', 'pytest-timeout', 'cvxpy>=1.4'],
    },
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
