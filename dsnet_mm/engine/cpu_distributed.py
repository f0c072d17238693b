"""List in a config's ``custom_imports`` to train with ``--launcher pytorch`` on CPUs (gloo):
importing it initialises the process group when torchrun started this process and there is no
CUDA (see ``dsnet_mm/engine/dist.py``); otherwise it does nothing."""
from .dist import init_cpu_process_group

init_cpu_process_group()
