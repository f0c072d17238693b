"""Print how many CPU cores are idle now (at least 1): the OpenMP thread count that does not
spin-wait against other work.

The 1-minute load average is the wrong measure right after a set-up: pip's own work keeps it near
1 for a minute after pip has exited, so a 2-core machine that is idle again got one training
thread (about half the speed). This samples /proc/stat over a short window instead, and falls back
to the load average where there is no /proc (macOS).

    python tools/idle_cores.py [--window 1.0]
"""
import argparse
import os
import time


def _cpu_times():
    with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]          # idle + iowait
    return idle, sum(fields[:8])          # user..steal; guest time is counted inside user


def idle_cores(window: float = 1.0) -> int:
    n = os.cpu_count() or 1
    try:
        idle0, total0 = _cpu_times()
        time.sleep(window)
        idle1, total1 = _cpu_times()
        busy = n * (1 - (idle1 - idle0) / max(1, total1 - total0))
    except OSError:
        busy = os.getloadavg()[0]
    return max(1, min(n, round(n - busy)))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--window', type=float, default=1.0, help='seconds to sample (default 1)')
    print(idle_cores(parser.parse_args().window))
