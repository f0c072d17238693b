"""dsnet_mm: DS-Net (Dual-stream Network, NeurIPS 2021) for OpenMMLab.

The OpenMMLab stack is installed by ``tools/setup_env.sh`` (``STACK=upstream`` or ``onedl``; pins in
``requirements/stacks/``), torch and mmcv with ops first. ``install_requires`` names no part of it:
upstream and OneDL ship the same import names under different distribution names (``mmengine`` vs
``onedl-mmengine``), so naming either would pull it into an environment of the other stack beside
the one there. ``import dsnet_mm`` says what is missing instead. The extras name each stack's
packages, and ``timm`` the optional timm models (unpinned; the pins are in ``requirements/stacks/``).
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
    install_requires=['numpy'],
    extras_require={
        'upstream': ['mmengine', 'mmdet', 'mmsegmentation', 'mmpretrain', 'pycocotools', 'ftfy',
                     'regex'],
        'onedl': ['onedl-mmengine', 'onedl-mmdetection', 'onedl-mmsegmentation', 'onedl-mmpretrain',
                  'pycocotools', 'ftfy', 'regex'],
        # DS-Net in timm (`import dsnet_mm.timm`); `import dsnet_mm` never needs it
        'timm': ['timm'],
        'tests': ['pytest', 'onnx', 'onnxruntime', 'timm'],
    },
    zip_safe=False,
)
