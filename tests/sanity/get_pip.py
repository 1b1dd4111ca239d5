"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test fills the empty virtual environments of its sanity tests by downloading get-pip.py
from a host this machine cannot reach. This does the same job from what is here: the pip wheel
bundled with Python (ensurepip), then a normal ``pip install`` of what ansible-test asks for from
the package registry.
"""

import subprocess
import sys

# get-pip.py's own switches; pip install does not know them.
_GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

if __name__ == "__main__":
    # In a child process: ensurepip clears the pip configuration (PIP_CONFIG_FILE=/dev/null) of
    # the process it runs in, and the install below needs the machine's index and CA settings.
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    args = [a for a in sys.argv[1:] if a not in _GET_PIP_ONLY]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
