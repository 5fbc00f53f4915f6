"""Helpers the bench/*.py scripts share (they sit next to it, so a plain
`import benchlib` finds it)."""
import os
import shutil
import signal
import subprocess
import time


def pct(v, p):
    """The p-th percentile of v (nearest rank)."""
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def status_kib(pid, field):
    """A kB figure from /proc/<pid>/status, e.g. "VmRSS" or "VmHWM"; 0 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def wait_sock(sock, proc, what, timeout=30):
    """Waits for proc to create its socket; RuntimeError if it exits or times out."""
    deadline = time.time() + timeout
    while not os.path.exists(sock):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("%s did not start" % what)
        time.sleep(0.05)


def stop(proc, sig=signal.SIGTERM, timeout=20):
    """Signals proc and reaps it, killing it if it does not go in time."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def have_containerd():
    """Installs containerd if it is missing; False (with a note) if it cannot."""
    if not shutil.which("containerd"):
        subprocess.run(["apt-get", "install", "-y", "-q", "containerd"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if not shutil.which("containerd"):
        print("containerd: not installable, comparison skipped")
        return False
    return True
