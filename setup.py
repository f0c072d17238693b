"""dsnet_mm: DS-Net (Dual-stream Network, NeurIPS 2021) for OpenMMLab.

The heavy, version-sensitive dependencies (torch, torchvision, mmcv with ops) are installed by
``tools/setup_env.sh`` in the order they need; ``install_requires`` only names what pip can resolve
safely on its own.
"""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'dsnet_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_readme():
    path = osp.join(osp.dirname(__file__), 'README.md')
    return open(path, encoding='utf-8').read() if osp.exists(path) else ''


setup(
    name='dsnet_mm',
    version=read_version(),
    description='DS-Net (Dual-stream Network) backbone and DS-FPN neck for mmdet, mmseg and mmpretrain',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['dsnet_mm', 'dsnet_mm.*']),
    python_requires='>=3.8',
    install_requires=['mmengine>=0.10.0', 'numpy'],
    extras_require={
        'mmdet': ['mmdet>=3.0.0', 'pycocotools'],
        'mmseg': ['mmsegmentation>=1.0.0', 'ftfy', 'regex'],
        'mmpretrain': ['mmpretrain>=1.0.0'],
        'tests': ['pytest', 'onnx', 'onnxruntime'],
    },
    zip_safe=False,
)
