"""cric-shim + src/shim with real runc (and crun where it runs).

Every container runs on a root filesystem made here from Debian's busybox
(dynamically linked: copied with the libraries ldd lists).  The daemon side
is driven by t/shim_driver (a C program on a libuv loop)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILDDIR, SKIP, SkipTest, need_root, run_tests  # noqa: E402

RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"
SHIM = os.path.join(BUILDDIR, "cric-shim")
DRIVER = os.path.join(BUILDDIR, "t", "shim_driver")
APPLETS = ["sh", "echo", "cat", "sleep", "seq", "head", "yes", "printf", "sort", "tr", "stty", "true",
           "false", "kill", "pidof", "ls", "grep", "dd", "tail"]
REC = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) ([PF]) (.*)$", re.S)


def make_rootfs(path):
    """busybox + the shared libraries it needs, and applet symlinks."""
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    bb = os.path.realpath("/bin/busybox")
    shutil.copy2(bb, os.path.join(path, "bin", "busybox"))
    out = subprocess.run(["ldd", bb], capture_output=True, text=True).stdout
    for m in re.finditer(r"(/\S+)", out):
        lib = m.group(1)
        dst = os.path.join(path, lib.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dst)
    for a in APPLETS:
        os.symlink("busybox", os.path.join(path, "bin", a))
    with open(os.path.join(path, "data.bin"), "wb") as f:
        f.write(bytes(range(256)) * 4 + b"\n")
    return path


def parse_log(path):
    """[(stream, tag, bytes)] of a CRI log; asserts every line is well formed."""
    recs = []
    with open(path, "rb") as f:
        data = f.read()
    assert data == b"" or data.endswith(b"\n"), "log does not end with a newline"
    for line in data.split(b"\n")[:-1]:
        m = REC.match(line)
        assert m, "malformed log record %r" % line[:100]
        recs.append((m.group(2).decode(), m.group(3).decode(), m.group(4)))
    return recs


def stream_text(recs, stream):
    """Reassembles one stream: P records join the next, F ends a line."""
    out = b""
    for s, tag, data in recs:
        if s == stream:
            out += data + (b"\n" if tag == "F" else b"")
    return out


class Env:
    def __init__(self, runtime=RUNC):
        self.runtime = runtime
        self.tmp = tempfile.mkdtemp(prefix="cric-shim-t-")
        self.rt_root = os.path.join(self.tmp, "rt")
        self.exits = os.path.join(self.tmp, "exits")
        self.rootfs = make_rootfs(os.path.join(self.tmp, "rootfs"))
        self.cgparent = "cric-test-%d" % os.getpid()
        self.logdir = os.path.join(self.tmp, "logs")
        self.ids = []
        self.procs = []

    def state(self, cid):
        return os.path.join(self.tmp, "state", cid)

    def log(self, cid):
        return os.path.join(self.logdir, cid + ".log")

    def bundle(self, cid, args, terminal=False, memory=None):
        b = os.path.join(self.tmp, "bundles", cid)
        os.makedirs(b)
        subprocess.run([RUNC, "spec"], cwd=b, check=True)
        with open(os.path.join(b, "config.json")) as f:
            c = json.load(f)
        c["root"] = {"path": self.rootfs, "readonly": True}
        c["process"]["args"] = args
        c["process"]["terminal"] = terminal
        c["process"]["env"] = ["PATH=/bin", "TERM=xterm"]
        c["linux"]["cgroupsPath"] = "/%s/%s" % (self.cgparent, cid)
        if memory:
            c["linux"].setdefault("resources", {})["memory"] = {"limit": memory}
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(c, f)
        return b

    def drv(self, *args, check=True, timeout=60):
        r = subprocess.run([DRIVER] + list(args), capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("shim_driver %s: rc=%d %s" % (args[0], r.returncode, r.stderr.decode()))
        return r

    def common(self, cid):
        return ["--shim", SHIM, "--id", cid, "--runtime", self.runtime, "--root", self.rt_root]

    def launch(self, cid, args, terminal=False, stdin=False, memory=None, check=True, extra=()):
        b = self.bundle(cid, args, terminal=terminal, memory=memory)
        self.ids.append(cid)
        os.makedirs(os.path.dirname(self.log(cid)), exist_ok=True)
        a = ["launch"] + self.common(cid) + ["--bundle", b, "--state", self.state(cid), "--exits", self.exits,
                                             "--log", self.log(cid)] + list(extra)
        if terminal:
            a.append("--terminal")
        if stdin:
            a.append("--stdin")
        r = self.drv(*a, check=check)
        if r.returncode == 0:
            m = re.match(rb"pid (\d+)", r.stdout)
            assert m, r.stdout
            return int(m.group(1))
        return r

    def start(self, cid):
        self.drv("start", "--runtime", self.runtime, "--root", self.rt_root, "--id", cid)

    def wait(self, cid, timeout=60):
        r = self.drv("wait", "--exits", self.exits, "--id", cid, "--timeout", str(timeout), timeout=timeout + 10)
        m = re.match(rb"exit status=(\d+) oom_killed=(\d) exited_at=(\d+)", r.stdout)
        assert m, r.stdout
        return int(m.group(1)), m.group(2) == b"1"

    def run(self, cid, args, **kw):
        self.launch(cid, args, **kw)
        self.start(cid)
        return self.wait(cid)

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for cid in self.ids:
            subprocess.run([self.runtime, "--root", self.rt_root, "delete", "-f", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                with open(os.path.join(self.state(cid), "shim.pid")) as f:
                    pid = int(f.read())
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "cric-shim":
                        os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        for ctl in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", ctl, self.cgparent)
            if os.path.isdir(d):
                for sub in os.listdir(d):
                    if os.path.isdir(os.path.join(d, sub)):
                        try:
                            os.rmdir(os.path.join(d, sub))
                        except OSError:
                            pass
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        if not self.logdir.startswith(self.tmp + "/"):
            shutil.rmtree(self.logdir, ignore_errors=True)


ENV = None


def env():
    return ENV


def test_exit_codes():
    e = env()
    assert e.run("ex0", ["sh", "-c", "exit 0"]) == (0, False)
    assert e.run("ex1", ["sh", "-c", "exit 1"]) == (1, False)
    e.launch("ex137", ["sleep", "100"])
    e.start("ex137")
    subprocess.run([RUNC, "--root", e.rt_root, "kill", "ex137", "KILL"], check=True)
    assert e.wait("ex137") == (137, False)
    r = e.drv("status", "--state", e.state("ex137"))
    assert r.stdout.startswith(b"exited ") and b"status=137" in r.stdout, r.stdout


def test_launch_error_text():
    e = env()
    r = e.launch("bad", ["/no/such/binary"], check=False)
    assert not isinstance(r, int), "launch of a missing binary succeeded"
    assert b"/no/such/binary" in r.stderr, r.stderr


def test_log_records_exact():
    e = env()
    st, _ = e.run("logs", ["sh", "-c", "echo hello; echo err >&2; printf 'a\\tb\\r\\n'; echo; printf partial"])
    assert st == 0
    recs = parse_log(e.log("logs"))
    out = [(t, d) for s, t, d in recs if s == "stdout"]
    assert out == [("F", b"hello"), ("F", b"a\tb\r"), ("F", b""), ("F", b"partial")], out
    assert [(s, t, d) for s, t, d in recs if s == "stderr"] == [("stderr", "F", b"err")]


def test_interleaved_streams():
    e = env()
    script = "i=0; while [ $i -lt 500 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"
    assert e.run("inter", ["sh", "-c", script]) == (0, False)
    recs = parse_log(e.log("inter"))
    assert all(t == "F" for _, t, _ in recs)
    assert [d for s, _, d in recs if s == "stdout"] == [b"out%d" % i for i in range(500)]
    assert [d for s, _, d in recs if s == "stderr"] == [b"err%d" % i for i in range(500)]


def test_slow_partial_line():
    """A line that takes long to end shows up as P, then its end as F."""
    e = env()
    assert e.run("slow", ["sh", "-c", "printf 'step 1...'; sleep 2; echo ' ok'"]) == (0, False)
    assert parse_log(e.log("slow")) == [("stdout", "P", b"step 1..."), ("stdout", "F", b" ok")]


def test_one_mib_line():
    e = env()
    assert e.run("big", ["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo after"]) == (0, False)
    recs = parse_log(e.log("big"))
    tags = [t for _, t, _ in recs]
    assert len(recs) >= 3 and tags[-1] == "F" and tags[-2] == "F" and "P" in tags, tags
    assert all(t == "P" for t in tags[:-2]), tags
    assert stream_text(recs, "stdout") == b"x" * 1048576 + b"\nafter\n"


def test_binary_data():
    e = env()
    assert e.run("bin", ["cat", "/data.bin"]) == (0, False)
    with open(os.path.join(e.rootfs, "data.bin"), "rb") as f:
        want = f.read()
    assert stream_text(parse_log(e.log("bin")), "stdout") == want


def test_terminal():
    e = env()
    e.launch("tty", ["sh", "-c", "stty size; echo on-tty; exit 4"], terminal=True)
    e.drv("resize", "--state", e.state("tty"), "--rows", "33", "--cols", "101")
    e.start("tty")
    assert e.wait("tty") == (4, False)
    text = stream_text(parse_log(e.log("tty")), "stdout")
    assert b"33 101\r\n" in text and b"on-tty\r\n" in text, text


def test_attach_stdin_echo():
    e = env()
    e.launch("cat", ["cat"], stdin=True)
    e.start("cat")
    r = e.drv("attach", "--state", e.state("cat"), "--input", "ping\n", "--close-stdin", "--timeout", "30")
    assert r.stdout == b"ping\n", r.stdout
    assert e.wait("cat") == (0, False)
    assert parse_log(e.log("cat")) == [("stdout", "F", b"ping")]


def test_attach_terminal_resize():
    e = env()
    e.launch("ttyin", ["sh", "-c", "read x; stty size; echo got:$x"], terminal=True, stdin=True)
    e.start("ttyin")
    r = e.drv("attach", "--state", e.state("ttyin"), "--rows", "40", "--cols", "120", "--input", "hello\r",
              "--timeout", "30")
    assert b"40 120" in r.stdout and b"got:hello" in r.stdout, r.stdout
    assert e.wait("ttyin") == (0, False)


def test_reopen_after_rename():
    e = env()
    e.launch("rot", ["cat"], stdin=True)
    e.start("rot")
    e.drv("attach", "--state", e.state("rot"), "--input", "one\n", "--until", "one", "--timeout", "30")
    os.rename(e.log("rot"), e.log("rot") + ".1")
    e.drv("reopen", "--state", e.state("rot"))
    e.drv("attach", "--state", e.state("rot"), "--input", "two\n", "--until", "two", "--timeout", "30")
    e.drv("close-stdin", "--state", e.state("rot"))
    assert e.wait("rot") == (0, False)
    assert parse_log(e.log("rot") + ".1") == [("stdout", "F", b"one")]
    assert parse_log(e.log("rot")) == [("stdout", "F", b"two")]


def test_start_mode_and_signal():
    """--start: one `runtime run --detach`, the container runs at once; the
    SIGNAL request reaches it; after its exit the shim answers ESRCH."""
    e = env()
    e.launch("started", ["sh", "-c", "trap 'echo got-term; exit 3' TERM; echo up; while :; do sleep 0.1; done"],
             extra=("--start",))
    deadline = time.time() + 20
    while b"up" not in stream_text(parse_log(e.log("started")), "stdout"):
        assert time.time() < deadline, "no output without a separate start"
        time.sleep(0.05)
    r = e.drv("signal", "--state", e.state("started"), "--signal", "0", check=False)
    assert r.returncode != 0, "signal 0 accepted"
    e.drv("signal", "--state", e.state("started"), "--signal", str(int(signal.SIGTERM)))
    assert e.wait("started") == (3, False)
    assert b"got-term" in stream_text(parse_log(e.log("started")), "stdout")
    r = e.drv("signal", "--state", e.state("started"), "--signal", str(int(signal.SIGTERM)), check=False)
    assert r.returncode != 0


def test_wait_mode():
    """--wait: the shim sets up and waits, with no runtime process; a
    connection to its start socket starts the container and answers its
    pid; a second start finds no socket.  A waiting shim ends on SIGTERM."""
    e = env()
    shim_pid = e.launch("waiting", ["sh", "-c", "echo up; sleep 0.3; exit 4"], extra=("--wait",))
    st = e.state("waiting")
    assert os.path.exists(os.path.join(st, "start"))
    os.kill(shim_pid, 0)
    out = subprocess.run([RUNC, "--root", e.rt_root, "list", "-q"], capture_output=True, text=True).stdout
    assert "waiting" not in out.split(), out
    r = e.drv("go", "--state", st, "--id", "waiting")
    m = re.match(rb"pid (\d+)", r.stdout)
    assert m and int(m.group(1)) != shim_pid, r.stdout
    assert not os.path.exists(os.path.join(st, "start"))
    r = e.drv("go", "--state", st, "--id", "waiting", check=False)
    assert r.returncode != 0 and b"no cric-shim waiting" in r.stderr, r.stderr
    assert e.wait("waiting") == (4, False)
    assert b"up" in stream_text(parse_log(e.log("waiting")), "stdout")
    # A runtime failure comes back on the start connection.
    e.launch("waitbad", ["/no/such/binary"], extra=("--wait",))
    r = e.drv("go", "--state", e.state("waitbad"), "--id", "waitbad", check=False)
    assert r.returncode != 0 and b"/no/such/binary" in r.stderr, r.stderr
    # Nothing to watch yet: SIGTERM ends a waiting shim and its sockets.
    pid = e.launch("waitterm", ["true"], extra=("--wait",))
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while os.path.exists(os.path.join(e.state("waitterm"), "start")):
        assert time.time() < deadline, "waiting shim ignored SIGTERM"
        time.sleep(0.02)
    # Its container removed (state dir deleted) while it waits, even with
    # no cricd to tell it: the waiting shim ends on its own.
    pid = e.launch("waitgone", ["true"], extra=("--wait",))
    shutil.rmtree(e.state("waitgone"))
    deadline = time.time() + 10
    while os.path.exists("/proc/%d" % pid) and not open("/proc/%d/stat" % pid).read().split(") ")[1].startswith("Z"):
        assert time.time() < deadline, "waiting shim outlived its state dir"
        time.sleep(0.02)


def test_start_mode_error():
    e = env()
    r = e.launch("badstart", ["/no/such/binary"], extra=("--start",), check=False)
    assert r.returncode != 0 and b" run" in r.stderr, r.stderr


def test_oom_killed():
    e = env()
    st, oom = e.run("oom", ["sh", "-c", "head -c 300000000 /dev/zero | sort"], memory=16 << 20)
    if st != 137:
        raise SkipTest("could not provoke the OOM killer (status %d)" % st)
    assert oom, "status 137 under a 16 MiB limit but oom_killed not recorded"


def test_launcher_killed_nothing_lost():
    """kill -9 the process that launched the shim while the container prints."""
    e = env()
    n = 3000
    script = "i=0; while [ $i -lt %d ]; do echo line$i; i=$((i+1)); [ $((i %% 100)) = 0 ] && sleep 0.1; done; exit 7" % n
    b = e.bundle("k9", ["sh", "-c", script])
    e.ids.append("k9")
    os.makedirs(os.path.dirname(e.log("k9")), exist_ok=True)
    p = subprocess.Popen([DRIVER, "run"] + e.common("k9") + ["--bundle", b, "--state", e.state("k9"), "--exits",
                         e.exits, "--log", e.log("k9")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    e.procs.append(p)
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(e.log("k9")) and os.path.getsize(e.log("k9")) > 2000:
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    r = e.drv("status", "--state", e.state("k9"))
    assert r.stdout.startswith(b"running "), "shim not running after its launcher died: %r" % r.stdout
    st = subprocess.run([RUNC, "--root", e.rt_root, "state", "k9"], capture_output=True)
    assert json.loads(st.stdout)["status"] == "running", st.stdout
    assert e.wait("k9") == (7, False)
    recs = parse_log(e.log("k9"))
    assert [d for _, _, d in recs] == [b"line%d" % i for i in range(n)]
    # The shim exits right after writing the exit record: give it a moment.
    deadline = time.time() + 10
    while True:
        r = e.drv("status", "--state", e.state("k9"))
        if b"alive=0" in r.stdout or time.time() > deadline:
            break
        time.sleep(0.05)
    assert r.stdout.startswith(b"exited ") and b"status=7" in r.stdout and b"alive=0" in r.stdout, r.stdout


def test_full_disk_holds_output_back():
    """A full log filesystem blocks the container with a warning, losing nothing."""
    e = env()
    small = os.path.join(e.tmp, "small")
    os.makedirs(small)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small], check=True)
    try:
        n = 300000  # ~2 MB: more than the pipe and the shim's buffer hold
        b = e.bundle("full", ["seq", "1", str(n)])
        e.ids.append("full")
        log = os.path.join(small, "full.log")
        e.drv("launch", *e.common("full"), "--bundle", b, "--state", e.state("full"), "--exits", e.exits,
              "--log", log)
        e.start("full")
        shimlog = os.path.join(e.state("full"), "shim.log")
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(shimlog) and b"retrying" in open(shimlog, "rb").read():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no warning about the full disk in shim.log")
        st = subprocess.run([RUNC, "--root", e.rt_root, "state", "full"], capture_output=True)
        assert json.loads(st.stdout)["status"] == "running", "container did not wait for the disk"
        subprocess.run(["mount", "-o", "remount,size=64m", small], check=True)
        assert e.wait("full") == (0, False)
        assert [d for _, _, d in parse_log(log)] == [b"%d" % i for i in range(1, n + 1)]
    finally:
        subprocess.run(["umount", "-l", small])


def test_exec_sync():
    e = env()
    e.launch("ex", ["sleep", "100"])
    e.start("ex")
    base = ["exec"] + e.common("ex")
    r = e.drv(*base, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.stdout == b"exit_code=3 timed_out=0 out_truncated=0 err_truncated=0\nout\n", r.stdout
    assert r.stderr == b"err\n", r.stderr
    r = e.drv(*base, "--output-max", "1000", "--", "head", "-c", "100000", "/dev/zero")
    head, _, body = r.stdout.partition(b"\n")
    assert b"out_truncated=1" in head and body == b"\0" * 1000, head
    r = e.drv(*base, "--timeout", "1", "--", "sh", "-c", "sleep 50 & sleep 60")
    assert r.stdout.startswith(b"exit_code=137 timed_out=1"), r.stdout
    # live (not zombie) processes named sleep: only the container's init may be left
    live = "for p in /proc/[0-9]*; do grep -q '^State:.*Z' $p/status 2>/dev/null || cat $p/comm 2>/dev/null; done"
    r = e.drv(*base, "--", "sh", "-c", live)
    names = r.stdout.split(b"\n", 1)[1].split()
    assert names.count(b"sleep") == 1, "exec'd processes survived the timeout: %r" % names
    proc = os.path.join(e.tmp, "process.json")
    with open(proc, "w") as f:
        json.dump({"args": ["sh", "-c", "echo $GREETING from $(pwd)"], "cwd": "/etc", "env": ["PATH=/bin", "GREETING=hi"],
                   "user": {"uid": 0, "gid": 0}}, f)
    r = e.drv("exec", *e.common("ex")[:6], "--root", e.rt_root, "--process", proc)
    assert r.stdout == b"exit_code=0 timed_out=0 out_truncated=0 err_truncated=0\nhi from /etc\n", r.stdout
    subprocess.run([RUNC, "--root", e.rt_root, "kill", "ex", "KILL"], check=True)
    assert e.wait("ex") == (137, False)


def test_crun():
    e2 = Env(runtime=CRUN)
    try:
        r = e2.launch("c1", ["sh", "-c", "echo via-crun; exit 5"], check=False)
        if not isinstance(r, int):
            raise SkipTest("crun cannot create here: %s" % r.stderr.decode().strip()[:200])
        e2.start("c1")
        assert e2.wait("c1") == (5, False)
        assert parse_log(e2.log("c1")) == [("stdout", "F", b"via-crun")]
    finally:
        e2.cleanup()


def test_shim_logs_clean():
    """No shim wrote a sanitizer report or a warning we did not expect."""
    e = env()
    root = os.path.join(e.tmp, "state")
    bad = []
    for cid in os.listdir(root):
        p = os.path.join(root, cid, "shim.log")
        if os.path.exists(p):
            with open(p, errors="replace") as f:
                text = f.read()
            if "Sanitizer" in text or "runtime error" in text:
                bad.append((cid, text[:2000]))
    assert not bad, bad


def main():
    global ENV
    need_root()
    for path in (RUNC, "/bin/busybox", SHIM, DRIVER):
        if not os.path.exists(path):
            print("SKIP: %s missing" % path)
            sys.exit(SKIP)
    ENV = Env()
    try:
        run_tests([test_exit_codes, test_launch_error_text, test_log_records_exact, test_interleaved_streams,
                   test_slow_partial_line, test_one_mib_line, test_binary_data, test_terminal, test_attach_stdin_echo,
                   test_attach_terminal_resize, test_reopen_after_rename, test_start_mode_and_signal,
                   test_wait_mode, test_start_mode_error, test_oom_killed,
                   test_launcher_killed_nothing_lost, test_full_disk_holds_output_back, test_exec_sync, test_crun, test_shim_logs_clean])
    finally:
        ENV.cleanup()


if __name__ == "__main__":
    main()
