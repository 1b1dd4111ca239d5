"""Running things for the lab: commands with a deadline, polling, a small thread pool, file
writes that tell whether anything changed, and processes recorded by pid and start time
(a recycled pid is never signalled)."""

import contextlib
import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from .errors import LabError, UsageError

PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(cmd, input=None, check=True, timeout=60):
    try:
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                             check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({res.returncode}): "
                       f"{(res.stderr or res.stdout).strip()}")
    return res


def run_json(cmd):
    out = run(cmd).stdout.strip()
    return json.loads(out) if out else []


def ip_batch(lines, ns=None, tool="ip"):
    if lines:
        run([tool] + (["-n", ns] if ns else []) + ["-batch", "-"], input="\n".join(lines) + "\n")


def in_netns(ns, cmd):
    # nsenter --net is enough for sysctl/nft/ping: /proc/sys/net follows the caller's netns.
    return ["nsenter", f"--net=/run/netns/{ns}", "--"] + cmd


def poll(pred, timeout, interval=0.2):
    """Call pred() until it returns a truthy value or the deadline passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def pmap(func, items, workers=8):
    items = list(items)
    if len(items) <= 1:
        return [func(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))


def write_text(path, text, mode=0o644):
    """Write when different; return True when the file changed."""
    with contextlib.suppress(FileNotFoundError), open(path) as fh:
        if fh.read() == text:
            return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, mode)
    return True


def remove_file(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def log_tail(path, lines=5):
    """The end of a log, for error messages (a failed `up` removes the logs with the lab)."""
    try:
        with open(path, errors="replace") as fh:
            return " | ".join(fh.read().strip().splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def check_root():
    if os.geteuid() != 0:
        raise UsageError("labctl needs root")


def proc_start(pid):
    """Start time (clock ticks since boot) and state of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[19]), fields[0]


def alive(rec):
    if not rec:
        return False
    info = proc_start(rec["pid"])
    return bool(info) and info[0] == rec["start"] and info[1] != "Z"


def reap(pid):
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_records(records, timeout=5.0):
    """SIGTERM every live recorded process (pid + start time), then SIGKILL stragglers."""
    live = [r for r in records if alive(r)]

    def gone():
        for rec in live:
            reap(rec["pid"])   # our own children would otherwise linger as zombies
        return not any(alive(r) for r in live)

    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        for rec in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec["pid"], sig)
        if poll(gone, grace, 0.05):
            return
    raise LabError(f"processes survived SIGKILL: {[r['pid'] for r in live if alive(r)]}")


def spawn(argv, log_path, env=None):
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=env, cwd="/")
    info = proc_start(proc.pid)
    if info is None:
        raise LabError(f"{argv[0]} exited at once, see {log_path}")
    return {"pid": proc.pid, "start": info[0]}


def processes_in(inodes):
    """Processes living in one of the given network namespaces (by inode)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                info = proc_start(int(entry))
                if info:
                    found.append({"pid": int(entry), "start": info[0]})
    return found
