"""Shared test harness: a cricd in its own temporary root, talked to through
grpcio (an independent gRPC client), plus helpers to run cricctl.

Run with /usr/bin/python3 (Debian's python3-grpcio / python3-protobuf)."""
import atexit
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILDDIR = os.environ.get("CRIC_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("CRIC_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP = 77

_pb2 = None


def pb2():
    """The CRI v1 messages, compiled from proto/api.proto with protoc at test time."""
    global _pb2
    if _pb2 is None:
        # A child process of a test reuses its parent's module (CRIC_PB2_DIR):
        # a child that is killed would not remove a directory of its own.
        out = os.environ.get("CRIC_PB2_DIR")
        if not out:
            out = tempfile.mkdtemp(prefix="cric-pb2-")
            atexit.register(shutil.rmtree, out, True)
            subprocess.run(["protoc", "-I", os.path.join(SRCDIR, "proto"), "--python_out", out,
                            os.path.join(SRCDIR, "proto", "api.proto")], check=True)
            os.environ["CRIC_PB2_DIR"] = out
        sys.path.insert(0, out)
        _pb2 = importlib.import_module("api_pb2")
    return _pb2


def wait_for(pred, what="condition", timeout=20, interval=0.05):
    """Polls pred() until it is true; AssertionError naming what after timeout seconds."""
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def poll(pred, timeout=10, interval=0.05):
    """Polls pred() until it is true or timeout seconds passed; the caller
    asserts what it needs afterwards."""
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        time.sleep(interval)


def need_root():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        sys.exit(SKIP)


def unmount_under(path):
    """Unmounts everything mounted below path, deepest first."""
    path = os.path.realpath(path)
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path + "/"):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


def connectable(path):
    """Whether something accepts connections on the unix socket path."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Daemon:
    """A cricd with its own root, state dir and socket under a temp dir."""

    def __init__(self, args=(), config=None, env=None, log_level="debug"):
        self.dir = tempfile.mkdtemp(prefix="cric-t-")
        self.sock = os.path.join(self.dir, "cricd.sock")
        self.root = os.path.join(self.dir, "root")
        self.state = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "cricd.log")
        self.args = list(args)
        self.config = config
        self.env = env
        self.log_level = log_level   # None: no --log-level flag (the config file decides)
        self.proc = None
        self.channel = None

    def cmdline(self):
        cmd = [os.path.join(BUILDDIR, "cricd"), "--listen", self.sock, "--root", self.root,
               "--state", self.state]
        if self.log_level is not None:
            cmd += ["--log-level", self.log_level]
        if self.config is not None:
            self.write_config(self.config)
            cmd += ["--config", self.config_path]
        else:
            cmd += ["--config", ""]   # never pick up an installed /etc/cricd/cricd.conf
        return cmd + self.args

    @property
    def config_path(self):
        return os.path.join(self.dir, "cricd.conf")

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def wait_log(self, text, timeout=30):
        """Waits until text appears in the daemon's log; returns the log."""
        deadline = time.time() + timeout
        while True:
            log = self.logtext()
            if text in log:
                return log
            if time.time() > deadline:
                raise AssertionError("%r not in cricd log:\n%s" % (text, log[-5000:]))
            time.sleep(0.02)

    def start(self, wait=True):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.cmdline(), stdout=logf, stderr=logf, env=env)
        logf.close()
        if wait:
            # The socket file appears at bind(), before listen(): wait until a
            # connect succeeds.
            deadline = time.time() + 30
            while not self._connectable():
                if self.proc.poll() is not None:
                    raise RuntimeError("cricd exited %d:\n%s" % (self.proc.returncode, self.logtext()))
                if time.time() > deadline:
                    raise RuntimeError("cricd did not listen:\n" + self.logtext())
                time.sleep(0.02)
        return self

    def _connectable(self):
        return connectable(self.sock)

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops cricd (by pid) and returns its exit code."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def cleanup(self):
        self.stop()
        unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        return Client("unix://" + self.sock)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("--- cricd log ---\n" + self.logtext()[-20000:] + "\n")
            self.cleanup()
            return False
        # A test that passed still fails if cricd does not stop cleanly: exit
        # code 0 also means no sanitizer report (leaks, open handles).
        rc = self.stop()
        log = self.logtext()
        self.cleanup()
        if rc not in (0, None):
            raise AssertionError("cricd exited %d on SIGTERM:\n%s" % (rc, log[-20000:]))
        return False


class Client:
    """A CRI client on grpcio: client.call("RuntimeService", "Version", req)."""

    def __init__(self, target):
        import grpc
        self.grpc = grpc
        self.channel = grpc.insecure_channel(target)

    def call(self, service, method, request, timeout=30, metadata=None, stream=False):
        pb = pb2()
        resp_name = type(request).__name__.replace("Request", "Response")
        if method == "GetContainerEvents":
            resp_name = "ContainerEventResponse"
        resp_cls = getattr(pb, resp_name)
        path = "/runtime.v1.%s/%s" % (service, method)
        if stream:
            fn = self.channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=resp_cls.FromString)
        else:
            fn = self.channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=resp_cls.FromString)
        return fn(request, timeout=timeout, metadata=metadata)

    def runtime(self, method, request=None, **kw):
        pb = pb2()
        if request is None:
            request = getattr(pb, method + "Request")()
        return self.call("RuntimeService", method, request, **kw)

    def image(self, method, request=None, **kw):
        pb = pb2()
        if request is None:
            request = getattr(pb, method + "Request")()
        return self.call("ImageService", method, request, **kw)

    def close(self):
        self.channel.close()


def cricctl(daemon, *args, check=True, input=None, timeout=120):
    """Runs the built cricctl against daemon; returns CompletedProcess (text)."""
    cmd = [os.path.join(BUILDDIR, "cricctl"), "--endpoint", "unix://" + daemon.sock] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def run_tests(tests):
    """Runs test functions in order; prints PASS/FAIL lines; exits 0/1/77."""
    failed = 0
    only = set(os.environ.get("CRIC_TESTS", "").split())  # run just these (development aid)
    for t in tests:
        name = t.__name__
        if only and name not in only:
            continue
        start = time.time()
        try:
            t()
            print("PASS: %s (%.2fs)" % (name, time.time() - start), flush=True)
        except SkipTest as e:
            print("SKIP: %s: %s" % (name, e), flush=True)
        except Exception:
            import traceback
            failed += 1
            print("FAIL: %s" % name, flush=True)
            traceback.print_exc()
    sys.exit(1 if failed else 0)


class SkipTest(Exception):
    pass
