"""Lab bring-up time: a 3-node and a 20-node BGP lab (tests/lab/labctl), as root.

Prints `lab-up-3: X s` and `lab-up-20: X s, ping N passed, M failed`. Targets: the 3-node lab
up in under 15 s, the 20-node lab pinging 100 %; a missed target exits 1.
"""

import os
import subprocess
import sys
import time

LABCTL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "tests", "lab", "labctl")
TARGET_UP_3 = 15.0


def labctl(*args):
    return subprocess.run([LABCTL, *args], capture_output=True, text=True, check=True)


def timed_up(name, nodes):
    labctl("down", "--name", name)
    start = time.monotonic()
    labctl("up", "--name", name, "--nodes", str(nodes), "--mode", "bgp")
    return time.monotonic() - start


def main():
    if os.geteuid() != 0:
        print("lab-up: skipped, the lab needs root")
        return 0
    ok = True
    try:
        seconds = timed_up("bup3", 3)
        print(f"lab-up-3: {seconds:.2f} s")
        ok &= seconds < TARGET_UP_3
    finally:
        labctl("down", "--name", "bup3")
    try:
        seconds = timed_up("bup20", 20)
        res = subprocess.run([LABCTL, "ping", "--name", "bup20"], capture_output=True, text=True,
                             check=False)
        summary = res.stdout.strip().splitlines()[-1]
        print(f"lab-up-20: {seconds:.2f} s, ping {summary}")
        ok &= res.returncode == 0
    finally:
        labctl("down", "--name", "bup20")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
