"""BIRD's control socket (birdc's protocol), reached from the root namespace."""

import os
import re
import socket

from .errors import LabError
from .state import node_dir

BIRD_SOCKET = "/var/run/calico/bird.ctl"


def bird_socket_host_path(lab, node):
    return os.path.join(node_dir(lab, node), "calico-run", "bird.ctl")


def bird_cmd(path, command, timeout=3.0):
    """Speak BIRD's control protocol; return (final code, text lines)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        fh = sock.makefile("rw", encoding="utf-8", newline="\n")

        def reply():
            lines = []
            while True:
                line = fh.readline()
                if not line:
                    raise LabError(f"BIRD closed {path}")
                line = line.rstrip("\n")
                if re.match(r"\d{4} ", line):
                    lines.append(line[5:])
                    return int(line[:4]), lines
                lines.append(line[5:] if re.match(r"\d{4}-", line) else line[1:])

        reply()
        fh.write(command + "\n")
        fh.flush()
        return reply()


def bird_protocols(path):
    """{name: info} for BGP protocols, e.g. {"Mesh_192_0_2_76": "Established"}."""
    code, lines = bird_cmd(path, "show protocols")
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "BGP":
            out[parts[0]] = parts[5] if len(parts) > 5 else parts[3]
    return out
