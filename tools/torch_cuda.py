"""Which torch build fits this machine's NVIDIA driver, and whether torch can use the GPU.

    python tools/torch_cuda.py plan 2.13.0 0.28.0   # before torch is installed (stdlib only)
    python tools/torch_cuda.py verify               # after, with the environment's python
    python tools/torch_cuda.py driver               # the driver's CUDA version ('' without one)

``tools/setup_env.sh`` calls ``plan`` and ``verify``; ``tools/check_env.py`` runs ``driver`` for its
device check.
``plan`` reads the driver's CUDA version from ``nvidia-smi`` and prints shell assignments
(``TORCH_CUDA``, ``TORCH_INDEX``, ``TORCH_SPEC``, ``TORCHVISION_SPEC``): the package index build when there is no driver or the driver runs it, otherwise the
download.pytorch.org build of the same torch version for the driver's CUDA major version.
``verify`` exits 3 when a driver is there but ``torch.cuda.is_available()`` is False, with a
message naming the driver's CUDA version, torch's, and the pip command for a matching build.
"""
import re
import shutil
import subprocess
import sys

# CUDA version of torch's build on the package index (`pip install torch` gets it; 2.13.0 is built
# for CUDA 13.0), and the other CUDA builds PyTorch publishes for recent releases at
# https://download.pytorch.org/whl/cu<XY> (https://pytorch.org/get-started/locally/).
INDEX_BUILD_CUDA = '13.0'
CUDA_BUILDS = ('12.6', '12.8', '13.0')
PYTORCH_INDEX = 'https://download.pytorch.org/whl/cu{tag}'

NO_GPU_CHECK = 'CPU_ONLY=1'          # setup_env.sh switch: ignore the GPU, train on the CPU


def _v(text):
    return tuple(int(x) for x in text.split('.')[:2])


def driver_cuda_version():
    """The highest CUDA version the NVIDIA driver supports ('12.2'), or None without a driver."""
    exe = shutil.which('nvidia-smi')
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'CUDA Version:\s*(\d+\.\d+)', out.stdout)
    return m.group(1) if out.returncode == 0 and m else None


def pick_build(driver_cuda):
    """The CUDA build of torch to install for a driver: the index build when the driver runs it,
    else the newest published build of the driver's CUDA major version that is not newer than the
    driver (CUDA minor-version compatibility lets an older minor build run on a newer driver), else
    the oldest of that major. None when no build fits (a driver older than every build)."""
    if driver_cuda is None or _v(driver_cuda) >= _v(INDEX_BUILD_CUDA):
        return INDEX_BUILD_CUDA
    same_major = [b for b in CUDA_BUILDS if _v(b)[0] == _v(driver_cuda)[0]]
    fitting = [b for b in same_major if _v(b) <= _v(driver_cuda)]
    if fitting:
        return max(fitting, key=_v)
    return min(same_major, key=_v) if same_major else None


def pip_command(python, torch_version, torchvision_version, cuda):
    """The pip command that installs ``torch_version`` built for ``cuda`` into ``python``'s env."""
    tag = cuda.replace('.', '')
    return (f'{python} -m pip install "torch=={torch_version}+cu{tag}" '
            f'"torchvision=={torchvision_version}+cu{tag}" --index-url {PYTORCH_INDEX.format(tag=tag)}')


def plan(torch_version, torchvision_version):
    driver = driver_cuda_version()
    build = pick_build(driver)
    if build is None:
        print(f'echo "[setup] ERROR: the NVIDIA driver supports CUDA {driver}, older than every CUDA '
              f'build of torch {torch_version} ({", ".join(CUDA_BUILDS)}). Update the driver, or '
              f'set {NO_GPU_CHECK} to train on the CPU." >&2; exit 3')
        return 3
    print(f'DRIVER_CUDA={driver or ""}')
    print(f'TORCH_CUDA={build}')
    if build == INDEX_BUILD_CUDA:     # the package index build
        print('TORCH_INDEX=')
        print(f'TORCH_SPEC="torch==={torch_version}"')
        print(f'TORCHVISION_SPEC="torchvision=={torchvision_version}"')
    else:
        tag = build.replace('.', '')
        print(f'TORCH_INDEX={PYTORCH_INDEX.format(tag=tag)}')
        print(f'TORCH_SPEC="torch=={torch_version}+cu{tag}"')
        print(f'TORCHVISION_SPEC="torchvision=={torchvision_version}+cu{tag}"')
    return 0


def gpu_problem():
    """None when torch can use the NVIDIA driver's GPU or there is no driver; otherwise what is
    wrong (the driver's CUDA version, torch's) and the fix (the pip command of a matching build)."""
    import torch
    import torchvision
    driver = driver_cuda_version()
    if driver is None or torch.cuda.is_available():
        return None
    torch_version = torch.__version__.split('+')[0]
    tv_version = torchvision.__version__.split('+')[0]
    torch_cuda = torch.version.cuda
    build = pick_build(driver)
    lines = [f'an NVIDIA driver is installed (nvidia-smi: CUDA {driver}) but torch {torch.__version__} '
             + (f'(built for CUDA {torch_cuda}) ' if torch_cuda else '(a CPU-only build) ')
             + 'cannot use it: torch.cuda.is_available() is False, so training would run on the CPU.']
    if torch_cuda and _v(torch_cuda)[0] == _v(driver)[0] and _v(torch_cuda) <= _v(driver):
        lines.append("torch's CUDA fits the driver: check that a GPU is visible (nvidia-smi, "
                     'CUDA_VISIBLE_DEVICES) and that the driver loads (dmesg).')
    elif build is None:
        lines.append(f'No CUDA build of torch {torch_version} ({", ".join(CUDA_BUILDS)}) runs on '
                     'this driver: update the NVIDIA driver.')
    else:
        lines.append('Install the build that matches the driver, then re-run the set-up:')
        lines.append('  ' + pip_command(sys.executable, torch_version, tv_version, build))
        lines.append(f'or update the NVIDIA driver to one for CUDA >= {torch_cuda or INDEX_BUILD_CUDA}.')
    lines.append(f'To train on the CPU anyway: {NO_GPU_CHECK} bash tools/setup_env.sh')
    return '\n  '.join(lines)


def verify():
    import torch
    problem = gpu_problem()
    if problem:
        print('[setup] ERROR: ' + problem, file=sys.stderr)
        return 3
    if torch.cuda.is_available():
        print(f'  torch {torch.__version__} (CUDA {torch.version.cuda}) uses '
              f'{torch.cuda.get_device_name(0)}: training runs on cuda')
    else:
        print(f'  no NVIDIA driver (nvidia-smi): torch {torch.__version__} trains on the CPU')
    return 0


def main(argv):
    if argv[:1] == ['plan'] and len(argv) == 3:
        return plan(argv[1], argv[2])
    if argv == ['verify']:
        return verify()
    if argv == ['driver']:
        print(driver_cuda_version() or '')
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
