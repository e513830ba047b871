"""A whole command's wall time and the peak memory of its process tree (the driver and its
worker processes), as a user's run of it costs: the command exactly as given.

    python benchmarks/command_peak.py -- .venv/bin/kaggle-digits cv --folds 5 --budget 120
"""

import subprocess
import sys
import time

from common import TreeMemory


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    if not command:
        sys.exit("usage: python benchmarks/command_peak.py -- COMMAND [ARGS...]")
    started = time.perf_counter()
    process = subprocess.Popen(command)
    with TreeMemory(process.pid) as memory:
        code = process.wait()
    minutes = (time.perf_counter() - started) / 60
    print(
        f"command_peak: exit {code}, {minutes:.1f} min, peak {memory.peak_gib:.2f} GiB PSS "
        f"({memory.peak_rss_gib:.2f} GiB RSS, {memory.peak_rss_bytes / 1e9:.2f} GB) over the "
        f"process tree: {' '.join(command)}",
        flush=True,
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
