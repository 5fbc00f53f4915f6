"""Helpers for the container tests: a busybox image written straight into a
daemon's image store (no registry needed), host-network pods, containers."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

BUSYBOX = "/bin/busybox"
RUNC = "/usr/sbin/runc"
CRUN = "/usr/bin/crun"


def need_env():
    harness.need_root()
    for p in (BUSYBOX, RUNC):
        if not os.access(p, os.X_OK):
            print("SKIP: %s missing" % p)
            sys.exit(harness.SKIP)


def _libs(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
    return libs


def make_rootfs(path):
    """busybox (the dynamic one, which really execs) with its libraries."""
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/alice", "work"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    for lib in _libs(BUSYBOX):
        dst = os.path.join(path, lib.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dst)
    apps = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True).stdout.split()
    for app in apps:
        if app != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", app))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                "nobody:x:65534:65534::/:/bin/false\n")
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write("root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nnogroup:x:65534:\n")
    os.chmod(os.path.join(path, "tmp"), 0o1777)


_layer_cache = {}


def add_image(root, name, config=None):
    """Writes image `name` (e.g. "test/busybox:1") into <root>/images; returns its ID.
    config may hold "_layer": a name for a layer of its own (else shared)."""
    images = os.path.join(root, "images")
    config = dict(config or {})
    layer_name = config.pop("_layer", "cric-test-busybox-layer")
    chain = "sha256:" + hashlib.sha256(layer_name.encode()).hexdigest()
    layer = os.path.join(images, "layers", chain[7:])
    if not os.path.isdir(os.path.join(layer, "diff")):
        os.makedirs(layer, exist_ok=True)
        make_rootfs(os.path.join(layer, "diff"))
        with open(os.path.join(layer, "size"), "w") as f:
            f.write("2000000")
    cfg = {"architecture": "amd64", "os": "linux",
           "config": dict({"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "IMGVAR=image"],
                           "Cmd": ["sh"]}, **config),
           "rootfs": {"type": "layers", "diff_ids": [chain]}}
    data = json.dumps(cfg, sort_keys=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(images, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(images, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    os.makedirs(os.path.join(images, "records"), exist_ok=True)
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    if name.count("/") < 2 and "." not in name.split("/")[0]:
        name = "docker.io/" + name
    rec = {"id": "sha256:" + digest, "repo_tags": [name], "repo_digests": [], "layers": [chain],
           "pulled_ns": time.time_ns()}
    with open(os.path.join(images, "records", digest + ".json"), "w") as f:
        json.dump(rec, f)
    return "sha256:" + digest


def daemon_config(d, extra=None):
    """Config for a test daemon: private runtime roots, log root, CNI dir."""
    netdir = os.path.join(d.dir, "net.d")
    os.makedirs(netdir, exist_ok=True)
    cfg = {
        "network": {"config_dir": netdir, "plugin_dirs": ["/usr/lib/cni"]},
        "sandbox": {"cgroup_parent": "/cric-test-%d" % os.getpid()},
        "containers": {"log_root": os.path.join(d.dir, "logs"), "stop_timeout": 10},
        "runtime": {"default": "runc", "handlers": {
            "runc": {"path": RUNC, "root": os.path.join(d.dir, "runc")},
            "crun": {"path": CRUN, "root": os.path.join(d.dir, "crun")}}},
    }
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    return json.dumps(cfg)


class Env:
    """A daemon with a busybox image, ready for pods."""

    def __init__(self, images=None, extra=None, daemon=None):
        self.final_log = ""
        self.d = daemon or harness.Daemon()
        self.d.config = daemon_config(self.d, extra)
        self.images = {}
        for name, cfg in (images or {"test/busybox": None}).items():
            self.images[name] = add_image(self.d.root, name, cfg)
        self.d.start()
        self.cl = self.d.client()
        self.pb = harness.pb2()

    def bind(self, fn):
        """fn(env) as a named test for harness.run_tests."""
        def t():
            return fn(self)
        t.__name__ = fn.__name__
        return t

    def restart(self, sig=9):
        self.cl.close()
        self.d.stop(sig=sig)
        if os.path.exists(self.d.sock):
            os.unlink(self.d.sock)
        self.d.start()
        self.cl = self.d.client()

    def cleanup(self):
        try:
            for c in self.cl.runtime("ListContainers").containers:
                try:
                    self.cl.runtime("RemoveContainer", self.pb.RemoveContainerRequest(container_id=c.id))
                except Exception:
                    pass
            for p in self.cl.runtime("ListPodSandbox").items:
                try:
                    self.cl.runtime("RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=p.id))
                except Exception:
                    pass
        except Exception:
            pass
        self.cl.close()
        rc = self.d.stop()
        log = self.final_log = self.d.logtext()
        self.sanitizer_report = "Sanitizer" in log and ("ERROR:" in log or "runtime error" in log)
        self.exit_code = rc
        for runtime_root in ("runc", "crun"):
            rr = os.path.join(self.d.dir, runtime_root)
            if os.path.isdir(rr):
                for cid in os.listdir(rr):
                    subprocess.run([RUNC if runtime_root == "runc" else CRUN, "--root", rr, "delete",
                                    "--force", cid], capture_output=True)
        self.d.cleanup()
        rm_cgroups("/cric-test-%d" % os.getpid())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and not (exc[0] is SystemExit and not exc[1].code):
            sys.stderr.write("--- cricd log ---\n" + self.d.logtext()[-30000:] + "\n")
        self.cleanup()
        log = self.final_log  # read after the stop: it says why an exit was unclean
        # A sanitizer report or an unclean exit of cricd fails the whole file.
        if self.sanitizer_report or self.exit_code not in (0, None):
            sys.stderr.write("cricd exited %s; log tail:\n%s\n" % (self.exit_code, log[-20000:]))
            sys.exit(1)
        return False

    # ---- pods and containers ----

    def pod_config(self, name, host_net=True, pid_pod=False, privileged=False):
        pb = self.pb
        c = pb.PodSandboxConfig()
        c.metadata.name = name
        c.metadata.uid = "uid-" + name
        c.metadata.namespace = "default"
        c.hostname = name
        c.log_directory = os.path.join(self.d.dir, "podlogs", name)
        ns = c.linux.security_context.namespace_options
        ns.network = pb.NODE if host_net else pb.POD
        ns.pid = pb.POD if pid_pod else pb.CONTAINER
        c.linux.security_context.privileged = privileged
        return c

    def run_pod(self, name, runtime_handler="", **kw):
        cfg = self.pod_config(name, **kw)
        pid = self.cl.runtime("RunPodSandbox", self.pb.RunPodSandboxRequest(config=cfg,
                                                                           runtime_handler=runtime_handler),
                              timeout=60).pod_sandbox_id
        return pid, cfg

    def ctr_config(self, name, cmd=None, args=None, image="test/busybox", **kw):
        c = self.pb.ContainerConfig()
        c.metadata.name = name
        c.metadata.attempt = kw.pop("attempt", 0)
        c.image.image = image
        if cmd is not None:
            c.command.extend(cmd)
        if args is not None:
            c.args.extend(args)
        c.log_path = name + ".log"
        for k, v in kw.pop("env", {}).items():
            e = c.envs.add()
            e.key, e.value = k, v
        for k, v in kw.pop("labels", {}).items():
            c.labels[k] = v
        for k, v in kw.pop("annotations", {}).items():
            c.annotations[k] = v
        for k, v in kw.items():
            setattr(c, k, v)
        return c

    def create(self, pod, podcfg, cfg, timeout=60):
        return self.cl.runtime("CreateContainer", self.pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=cfg, sandbox_config=podcfg), timeout=timeout).container_id

    def start(self, cid):
        self.cl.runtime("StartContainer", self.pb.StartContainerRequest(container_id=cid), timeout=60)

    def stop(self, cid, timeout=10):
        self.cl.runtime("StopContainer", self.pb.StopContainerRequest(container_id=cid, timeout=timeout),
                        timeout=timeout + 60)

    def remove(self, cid):
        self.cl.runtime("RemoveContainer", self.pb.RemoveContainerRequest(container_id=cid), timeout=60)

    def status(self, cid, verbose=False):
        return self.cl.runtime("ContainerStatus", self.pb.ContainerStatusRequest(
            container_id=cid, verbose=verbose))

    def exec_sync(self, cid, cmd, timeout=0, rpc_timeout=60):
        return self.cl.runtime("ExecSync", self.pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                               timeout=rpc_timeout)

    def wait_state(self, cid, state, timeout=20):
        deadline = time.time() + timeout
        while True:
            st = self.status(cid).status
            if st.state == state:
                return st
            if time.time() > deadline:
                raise AssertionError("container %s in state %d, wanted %d" % (cid, st.state, state))
            time.sleep(0.05)

    def run(self, pod, podcfg, name, cmd, **kw):
        cid = self.create(pod, podcfg, self.ctr_config(name, cmd, **kw))
        self.start(cid)
        return cid

    def output(self, pod_cfg, name):
        """The messages of the container's CRI log, joined."""
        path = os.path.join(pod_cfg.log_directory, name + ".log")
        with open(path, "rb") as f:
            data = f.read()
        out = b""
        for line in data.splitlines():
            parts = line.split(b" ", 3)
            if len(parts) < 3:
                continue
            msg = parts[3] if len(parts) == 4 else b""
            out += msg + (b"\n" if parts[2] == b"F" else b"")
        return out.decode(errors="replace")


def pid_alive(pid):
    """True for a live process (a zombie nobody reaped yet counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def waiting_shim(env, cid):
    """The pid of the shim launched at CreateContainer if it is alive and
    waiting on its start socket, else None."""
    st = os.path.join(env.d.state, "c", cid)
    try:
        with open(os.path.join(st, "shim.pid")) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        return None
    return pid if os.path.exists(os.path.join(st, "start")) and pid_alive(pid) else None


def shim_pid(env, cid):
    with open(os.path.join(env.d.state, "c", cid, "shim.pid")) as f:
        return int(f.read())


def wait_gone(path, timeout=20):
    """RemoveContainer answers once the record is gone; the trees follow on
    cricd's thread pool."""
    deadline = time.time() + timeout
    while os.path.exists(path):
        if time.time() > deadline:
            raise AssertionError("'%s' still there after RemoveContainer" % path)
        time.sleep(0.02)


def rm_cgroups(parent):
    """Removes the test's cgroup parent in every hierarchy, deepest first."""
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(base):
            continue
        for ctrl in os.listdir(base):
            root = os.path.join(base, ctrl) if base == "/sys/fs/cgroup" else base
            top = root + parent
            if not os.path.isdir(top):
                continue
            for dirpath, dirnames, _ in sorted(os.walk(top), key=lambda x: -len(x[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
