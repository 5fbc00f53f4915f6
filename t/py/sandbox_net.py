"""Pod sandboxes with the real CNI plugins (bridge, host-local, portmap):
IPs, pod-to-pod traffic, host ports, DNS files, idempotent stop/remove,
failing plugins, a missing config, concurrency, recovery after kill -9."""
import concurrent.futures
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SkipTest  # noqa: E402

PLUGIN_DIR = "/usr/lib/cni"
BUSYBOX = shutil.which("busybox")


def need_env():
    harness.need_root()
    for p in ("bridge", "host-local", "portmap"):
        if not os.access(os.path.join(PLUGIN_DIR, p), os.X_OK):
            print("SKIP: CNI plugin %s missing (apt-get install containernetworking-plugins)" % p)
            sys.exit(harness.SKIP)
    for tool in ("ip", "nsenter", "iptables"):
        if not shutil.which(tool):
            print("SKIP: %s missing" % tool)
            sys.exit(harness.SKIP)


class Net:
    """A test-only CNI network: its own conf dir, bridge name, subnet, IPAM dir."""

    def __init__(self, tag, portmap=True):
        self.dir = tempfile.mkdtemp(prefix="cric-cni-")
        self.conf_dir = os.path.join(self.dir, "net.d")
        os.mkdir(self.conf_dir)
        self.bridge = "cb%d%s" % (os.getpid() % 100000, tag)[:15]
        self.subnet_b = random.randint(16, 31)
        self.subnet_c = random.randint(0, 255)
        self.subnet = "172.%d.%d.0/24" % (self.subnet_b, self.subnet_c)
        plugins = [{
            "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": os.path.join(self.dir, "ipam"),
                     "ranges": [[{"subnet": self.subnet}]], "routes": [{"dst": "0.0.0.0/0"}]},
        }]
        if portmap:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
        self.conf = {"cniVersion": "1.0.0", "name": "cric-test-%s" % self.bridge, "plugins": plugins}
        with open(os.path.join(self.conf_dir, "10-test.conflist"), "w") as f:
            json.dump(self.conf, f)

    def config(self, plugin_dirs=None, extra=""):
        dirs = plugin_dirs or [PLUGIN_DIR]
        return ('{ "network": { "config_dir": %s, "plugin_dirs": %s } %s }'
                % (json.dumps(self.conf_dir), json.dumps(dirs), extra))

    def cleanup(self):
        subprocess.run(["ip", "link", "del", self.bridge], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def pod_config(name, uid=None, ports=(), dns=None, host_net=False, pid_pod=False):
    pb = harness.pb2()
    c = pb.PodSandboxConfig()
    c.metadata.name = name
    c.metadata.uid = uid or "uid-" + name
    c.metadata.namespace = "default"
    c.hostname = name
    c.labels["app"] = name
    c.labels["test"] = "sandbox"
    c.annotations["note"] = "x"
    for (hp, cp) in ports:
        m = c.port_mappings.add()
        m.host_port = hp
        m.container_port = cp
        m.host_ip = "127.0.0.1"
    if dns:
        c.dns_config.servers.extend(dns[0])
        c.dns_config.searches.extend(dns[1])
        c.dns_config.options.extend(dns[2])
    ns = c.linux.security_context.namespace_options
    if host_net:
        ns.network = pb.NODE
    ns.pid = pb.POD if pid_pod else pb.CONTAINER
    return c


def run_pod(cl, cfg, timeout=60):
    pb = harness.pb2()
    return cl.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg), timeout=timeout).pod_sandbox_id


def status(cl, pid, verbose=False):
    pb = harness.pb2()
    return cl.runtime("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pid, verbose=verbose))


def stop(cl, pid):
    pb = harness.pb2()
    cl.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)


def remove(cl, pid):
    pb = harness.pb2()
    cl.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)


def list_pods(cl, **flt):
    pb = harness.pb2()
    req = pb.ListPodSandboxRequest()
    if "id" in flt:
        req.filter.id = flt["id"]
    if "state" in flt:
        req.filter.state.state = flt["state"]
    for k, v in flt.get("labels", {}).items():
        req.filter.label_selector[k] = v
    return list(cl.runtime("ListPodSandbox", req).items)


def netns_of(d, pid):
    return os.path.join(d.state, "ns", pid, "net")


def in_ns(d, pid, *cmd, **kw):
    return subprocess.run(["nsenter", "--net=" + netns_of(d, pid), "--"] + list(cmd),
                          capture_output=True, text=True, timeout=30, **kw)


def restart(d):
    """kill -9 and start again on the same dirs."""
    d.stop(sig=signal.SIGKILL)
    if os.path.exists(d.sock):
        os.unlink(d.sock)  # stale after kill -9; start() waits for the new one
    d.start()
    return d.client()


def sandbox_dirs(d):
    """Pod directories; removed ones are deleted in the background, give them 5 s."""
    path = os.path.join(d.root, "sandboxes")
    for _ in range(100):
        names = os.listdir(path)
        if not any(n.startswith(".trash-") for n in names):
            break
        time.sleep(0.05)
    return names


def leftovers(d, net):
    """Namespace pins and veths left by the test's pods, once the background
    teardown of removed pods (after RemovePodSandbox answered) had up to 20 s."""
    ns_root = os.path.join(d.state, "ns")
    def look():
        pins = os.listdir(ns_root) if os.path.isdir(ns_root) else []
        out = subprocess.run(["ip", "-o", "link", "show", "master", net.bridge], capture_output=True,
                             text=True).stdout
        return pins, [l for l in out.splitlines() if l.strip()]
    harness.poll(lambda: look() == ([], []), timeout=20)
    return look()


def test_basic_network_dns_and_idempotence():
    pb = harness.pb2()
    net = Net("a")
    try:
        with harness.Daemon(config=net.config()) as d:
            cl = d.client()
            dns = (["10.0.0.10"], ["svc.cluster.local", "cluster.local"], ["ndots:5"])
            a = run_pod(cl, pod_config("pa", dns=dns))
            b = run_pod(cl, pod_config("pb"))
            assert len(a) == 64 and all(ch in "0123456789abcdef" for ch in a), a
            sa, sb_ = status(cl, a, verbose=True), status(cl, b)
            assert sa.status.state == pb.SANDBOX_READY
            assert sa.status.metadata.name == "pa" and sa.status.labels["app"] == "pa"
            assert sa.status.annotations["note"] == "x"
            ipa, ipb = sa.status.network.ip, sb_.status.network.ip
            prefix = "172.%d.%d." % (net.subnet_b, net.subnet_c)
            assert ipa.startswith(prefix) and ipb.startswith(prefix) and ipa != ipb, (ipa, ipb)
            info = json.loads(sa.info["info"])
            assert info["netns"] == netns_of(d, a) and info["cniResult"]["ips"], info
            # The address really is on eth0 inside the pinned namespace.
            out = in_ns(d, a, "ip", "-o", "addr", "show", "eth0").stdout
            assert ipa + "/" in out, out
            # Pod to pod over the bridge (UDP echo through a socket in each netns).
            assert ping(d, a, ipb), "pod a cannot reach pod b"
            # DNS and host files.
            sbdir = os.path.join(d.root, "sandboxes", a)
            resolv = open(os.path.join(sbdir, "resolv.conf")).read()
            assert resolv == "nameserver 10.0.0.10\nsearch svc.cluster.local cluster.local\noptions ndots:5\n", resolv
            assert open(os.path.join(sbdir, "hostname")).read() == "pa\n"
            hosts = open(os.path.join(sbdir, "hosts")).read()
            assert "127.0.0.1\tlocalhost" in hosts and ("%s\tpa" % ipa) in hosts, hosts
            host_resolv = open("/etc/resolv.conf").read() if os.path.exists("/etc/resolv.conf") else ""
            assert open(os.path.join(d.root, "sandboxes", b, "resolv.conf")).read() == host_resolv
            assert in_ns(d, a, "hostname").stdout.strip() != "" and uts_hostname(d, a) == "pa"
            assert os.path.ismount(os.path.join(sbdir, "shm"))
            # Duplicate names are refused, naming the existing pod.
            try:
                run_pod(cl, pod_config("pa", dns=dns))
                raise AssertionError("duplicate pod accepted")
            except harness.Client("unix:///nonexistent").grpc.RpcError as e:
                assert e.code().name == "ALREADY_EXISTS" and a in e.details(), e.details()
            # List filters.
            assert {p.id for p in list_pods(cl)} == {a, b}
            assert [p.id for p in list_pods(cl, id=a[:12])] == [a]
            assert [p.id for p in list_pods(cl, labels={"app": "pb"})] == [b]
            # Stop twice, then remove twice; the network goes away at stop.
            stop(cl, a)
            stop(cl, a)
            assert status(cl, a).status.state == pb.SANDBOX_NOTREADY
            assert [p.id for p in list_pods(cl, state=pb.SANDBOX_NOTREADY)] == [a]
            remove(cl, a)
            remove(cl, a)
            remove(cl, "f" * 64)
            stop(cl, "f" * 64)
            try:
                status(cl, a)
                raise AssertionError("removed pod still has a status")
            except Exception as e:  # grpc.RpcError
                assert getattr(e, "code", lambda: None)().name == "NOT_FOUND", e
            assert not os.path.exists(sbdir)
            remove(cl, b)
            pins, veths = leftovers(d, net)
            assert pins == [] and veths == [], (pins, veths)
            # A clean exit (under ASan: no leaks, every handle closed).
            rc = d.stop()
            assert rc == 0, "cricd exited %s:\n%s" % (rc, d.logtext()[-5000:])
    finally:
        net.cleanup()


def uts_hostname(d, pid):
    return subprocess.run(["nsenter", "--uts=" + os.path.join(d.state, "ns", pid, "uts"), "hostname"],
                          capture_output=True, text=True).stdout.strip()


ECHO_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(5)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hello from pod\n")
    c.close()
"""


def start_server(d, pid, port):
    p = subprocess.Popen(["nsenter", "--net=" + netns_of(d, pid), "--", sys.executable, "-c", ECHO_SERVER,
                          str(port)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def ping(d, a, ip_b):
    """TCP connect from pod a's netns to a server in pod b (ip_b)."""
    b = [p for p in os.listdir(os.path.join(d.state, "ns"))
         if p != a]
    for pid in b:
        srv = start_server(d, pid, 7777)
        try:
            cmd = ("import socket; s=socket.create_connection((%r, 7777), timeout=5); "
                   "print(s.recv(100).decode().strip())" % ip_b)
            out = in_ns(d, a, sys.executable, "-c", cmd)
            if out.stdout.strip() == "hello from pod":
                return True
        finally:
            srv.kill()
            srv.wait()
    return False


def test_host_port():
    net = Net("p")
    port = 20000 + os.getpid() % 20000
    try:
        with harness.Daemon(config=net.config()) as d:
            cl = d.client()
            a = run_pod(cl, pod_config("web", ports=[(port, 8080)]))
            srv = start_server(d, a, 8080)
            try:
                # portmap DNATs 127.0.0.1:port with route_localnet on the bridge.
                got = ""
                for _ in range(20):
                    try:
                        s = socket.create_connection(("127.0.0.1", port), timeout=2)
                        got = s.recv(100).decode().strip()
                        s.close()
                        break
                    except OSError:
                        time.sleep(0.1)
                assert got == "hello from pod", "host port %d did not reach the pod: %r" % (port, got)
            finally:
                srv.kill()
                srv.wait()
            remove(cl, a)
            rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
            assert a not in rules and ("dport %d" % port) not in rules, "portmap rules left behind"
    finally:
        net.cleanup()


def write_plugin(dirpath, name, body):
    p = os.path.join(dirpath, name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(p, 0o755)


def test_failing_plugins_leave_nothing():
    net = Net("f", portmap=False)
    fake = os.path.join(net.dir, "plugins")
    os.mkdir(fake)
    # bridge works; the second plugin misbehaves according to its name.
    write_plugin(fake, "garbage", 'cat >/dev/null; [ "$CNI_COMMAND" = ADD ] && echo "not json {{{"; exit 0\n')
    write_plugin(fake, "errjson", 'cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exit 0; '
                 'echo \'{"cniVersion":"1.0.0","code":11,"msg":"quota exceeded","details":"try later"}\'; exit 1\n')
    write_plugin(fake, "hang", 'cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exit 0; sleep 60\n')
    try:
        for bad, expect in (("garbage", "not valid JSON"), ("errjson", "quota exceeded (code 11): try later"),
                            ("hang", "timed out")):
            conf = dict(net.conf)
            conf["plugins"] = net.conf["plugins"][:1] + [{"type": bad}]
            with open(os.path.join(net.conf_dir, "10-test.conflist"), "w") as f:
                json.dump(conf, f)
            with harness.Daemon(config=net.config([PLUGIN_DIR, fake]),
                                env={"CRICD_CNI_TIMEOUT_MS": "1500"}) as d:
                cl = d.client()
                try:
                    run_pod(cl, pod_config("bad-" + bad))
                    raise AssertionError("RunPodSandbox with plugin %s succeeded" % bad)
                except cl.grpc.RpcError as e:
                    assert expect in e.details() and bad in e.details(), e.details()
                assert list_pods(cl) == []
                pins, veths = leftovers(d, net)
                assert pins == [] and veths == [], (bad, pins, veths)
                assert sandbox_dirs(d) == []
                ipam = os.path.join(net.dir, "ipam", net.conf["name"])
                allocs = [f for f in os.listdir(ipam) if f[0].isdigit()] if os.path.isdir(ipam) else []
                assert allocs == [], "IP allocations left: %s" % allocs
    finally:
        net.cleanup()


def test_crash_during_add_rolls_back():
    """cricd killed while a plugin runs ADD: the restart removes the half-made pod."""
    net = Net("r", portmap=False)
    fake = os.path.join(net.dir, "plugins")
    os.mkdir(fake)
    pidfile = os.path.join(net.dir, "slow.pid")
    write_plugin(fake, "slow", 'cat >/dev/null; [ "$CNI_COMMAND" = DEL ] && exit 0; echo $$ > %s; sleep 60\n'
                 % pidfile)
    conf = dict(net.conf)
    conf["plugins"] = net.conf["plugins"][:1] + [{"type": "slow"}]
    with open(os.path.join(net.conf_dir, "10-test.conflist"), "w") as f:
        json.dump(conf, f)
    try:
        with harness.Daemon(config=net.config([PLUGIN_DIR, fake])) as d:
            cl = d.client()
            try:
                run_pod(cl, pod_config("crash"), timeout=3)
                raise AssertionError("RunPodSandbox returned while its plugin sleeps")
            except cl.grpc.RpcError as e:
                assert e.code().name == "DEADLINE_EXCEEDED", e
            assert os.path.exists(pidfile) and len(os.listdir(os.path.join(d.state, "ns"))) == 1
            d.stop(sig=signal.SIGKILL)
            with open(pidfile) as f:
                os.kill(int(f.read()), signal.SIGKILL)  # our own plugin, by pid
            os.unlink(d.sock)
            cl = d.start().client()
            for _ in range(100):
                if not os.listdir(os.path.join(d.state, "ns")):
                    break
                time.sleep(0.05)
            assert list_pods(cl) == []
            pins, veths = leftovers(d, net)
            assert pins == [] and veths == [], (pins, veths)
            assert sandbox_dirs(d) == []
            ipam = os.path.join(net.dir, "ipam", net.conf["name"])
            allocs = [f for f in os.listdir(ipam) if f[0].isdigit()] if os.path.isdir(ipam) else []
            assert allocs == [], "IP allocations left: %s" % allocs
    finally:
        net.cleanup()


def test_missing_config():
    pb = harness.pb2()
    empty = tempfile.mkdtemp(prefix="cric-cni-empty-")
    try:
        cfg = '{ "network": { "config_dir": %s, "plugin_dirs": ["/usr/lib/cni"] } }' % json.dumps(empty)
        with harness.Daemon(config=cfg) as d:
            cl = d.client()
            st = cl.runtime("Status", pb.StatusRequest())
            nr = [c for c in st.status.conditions if c.type == "NetworkReady"][0]
            assert not nr.status and empty in nr.message, nr
            try:
                run_pod(cl, pod_config("nonet"))
                raise AssertionError("RunPodSandbox without a network config succeeded")
            except cl.grpc.RpcError as e:
                assert "no CNI network config" in e.details() and empty in e.details(), e.details()
            assert list_pods(cl) == []
            # Host-network pods need no CNI.
            h = run_pod(cl, pod_config("hostnet", host_net=True, pid_pod=True))
            s = status(cl, h, verbose=True)
            info = json.loads(s.info["info"])
            assert info["netns"] is None and info["pausePid"] > 0, info
            assert os.path.exists("/proc/%d" % info["pausePid"])
            remove(cl, h)

            def pause_gone():
                # SIGKILL is delivered asynchronously: gone or a zombie soon.
                try:
                    with open("/proc/%d/stat" % info["pausePid"]) as f:
                        return f.read().split(") ")[1][0] in "ZX"
                except OSError:
                    return True
            harness.wait_for(pause_gone, "the pod's pause process to die", timeout=10)
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def test_concurrent_20():
    net = Net("c", portmap=False)
    try:
        with harness.Daemon(config=net.config()) as d:
            cl = d.client()
            with concurrent.futures.ThreadPoolExecutor(20) as ex:
                ids = list(ex.map(lambda i: run_pod(cl, pod_config("c%d" % i)), range(20)))
            ips = {status(cl, i).status.network.ip for i in ids}
            assert len(set(ids)) == 20 and len(ips) == 20, ips
            with concurrent.futures.ThreadPoolExecutor(20) as ex:
                list(ex.map(lambda i: remove(cl, i), ids))
            assert list_pods(cl) == []
            pins, veths = leftovers(d, net)
            assert pins == [] and veths == [], (pins, veths)
    finally:
        net.cleanup()


def test_kill9_recovery():
    pb = harness.pb2()
    net = Net("k", portmap=False)
    try:
        with harness.Daemon(config=net.config()) as d:
            cl = d.client()
            a = run_pod(cl, pod_config("ka", pid_pod=True))
            b = run_pod(cl, pod_config("kb"))
            ip_a = status(cl, a).status.network.ip
            pause = json.loads(status(cl, a, verbose=True).info["info"])["pausePid"]
            cl = restart(d)
            s = status(cl, a, verbose=True)
            assert s.status.state == pb.SANDBOX_READY and s.status.network.ip == ip_a
            assert json.loads(s.info["info"])["pausePid"] == pause
            assert ping(d, b, ip_a)
            cl = restart(d)
            stop(cl, a)
            cl = restart(d)
            assert status(cl, a).status.state == pb.SANDBOX_NOTREADY
            stop(cl, a)
            remove(cl, a)
            cl = restart(d)
            assert [p.id for p in list_pods(cl)] == [b]
            remove(cl, b)
            cl = restart(d)
            assert list_pods(cl) == []
            pins, veths = leftovers(d, net)
            assert pins == [] and veths == [], (pins, veths)
            # Pods left running at a clean shutdown stay; the exit is clean.
            run_pod(cl, pod_config("kc", pid_pod=True))
            rc = d.stop()
            assert rc == 0, "cricd exited %s:\n%s" % (rc, d.logtext()[-5000:])
            cl = d.start().client()
            (left,) = list_pods(cl)
            assert left.state == pb.SANDBOX_READY
            remove(cl, left.id)
    finally:
        net.cleanup()


def net_check(cl, pid):
    """The pod's networkCheck verbose info once it is no longer pending."""
    harness.poll(lambda: json.loads(status(cl, pid, verbose=True).info["info"]).get(
        "networkCheck", {}).get("status") != "pending", timeout=30)
    return json.loads(status(cl, pid, verbose=True).info["info"]).get("networkCheck")


def test_network_check_after_restart():
    """After a restart every ready pod's network gets a CNI CHECK: a healthy
    pod passes; one whose eth0 was deleted by hand fails, with the plugin's
    error in the verbose info, inspectp and the log; disableCheck skips it."""
    net = Net("n")
    try:
        with harness.Daemon(config=net.config()) as d:
            cl = d.client()
            a = run_pod(cl, pod_config("na"))
            b = run_pod(cl, pod_config("nb"))
            assert "networkCheck" not in json.loads(status(cl, a, verbose=True).info["info"])
            cl = restart(d)
            assert net_check(cl, a) == {"status": "passed"}, net_check(cl, a)
            assert net_check(cl, b) == {"status": "passed"}
            out = json.loads(harness.cricctl(d, "inspectp", "-o", "json", a).stdout)
            assert '"passed"' in json.dumps(out) and "networkCheck" in json.dumps(out), out
            pin = json.loads(status(cl, a, verbose=True).info["info"])["netns"]
            subprocess.run(["nsenter", "--net=" + pin, "ip", "link", "del", "eth0"], check=True)
            cl = restart(d)
            chk = net_check(cl, a)
            assert chk["status"] == "failed" and "CNI plugin 'bridge' CHECK" in chk["message"], chk
            assert net_check(cl, b) == {"status": "passed"}
            assert "failed" in harness.cricctl(d, "inspectp", a).stdout
            assert any(a in l and "network check (CNI CHECK) failed" in l and "bridge" in l
                       for l in d.logtext().splitlines() if " warn " in l), d.logtext()[-3000:]
            # disableCheck (the config kept with the pod counts): skipped.
            conf = dict(net.conf, disableCheck=True)
            with open(os.path.join(net.conf_dir, "10-test.conflist"), "w") as f:
                json.dump(conf, f)
            c = run_pod(cl, pod_config("nc"))
            cl = restart(d)
            chk = net_check(cl, c)
            assert chk["status"] == "skipped" and "disableCheck" in chk["message"], chk
            assert net_check(cl, b) == {"status": "passed"}
            for p in (a, b, c):
                stop(cl, p)
                remove(cl, p)
            pins, veths = leftovers(d, net)
            assert pins == [] and veths == [], (pins, veths)
    finally:
        net.cleanup()


def test_cricctl_sysctls_cgroups():
    """crictl-style JSON through cricctl; sysctls land in the pod's namespaces;
    the cgroup parent is created per pod and removed with it."""
    net = Net("x", portmap=False)
    cgp = "/cric-test-%d/pod-x" % os.getpid()
    try:
        with harness.Daemon(config=net.config()) as d:
            conf = {
                "metadata": {"name": "ctl", "uid": "u-ctl", "namespace": "ns1", "attempt": 1},
                "hostname": "ctlhost",
                "log_directory": "/tmp",
                "labels": {"tier": "x"},
                "dns_config": {"servers": ["1.1.1.1"]},
                "linux": {"cgroup_parent": cgp,
                          "sysctls": {"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shmmni": "1234"},
                          "security_context": {"namespace_options": {"pid": 1}}},
            }
            path = os.path.join(d.dir, "pod.json")
            with open(path, "w") as f:
                json.dump(conf, f)
            pid = harness.cricctl(d, "runp", path).stdout.strip()
            assert len(pid) == 64, pid
            out = harness.cricctl(d, "pods").stdout
            assert pid[:13] in out and "ctl" in out and "Ready" in out, out
            assert harness.cricctl(d, "pods", "-q", "--label", "tier=x").stdout.split() == [pid]
            assert harness.cricctl(d, "pods", "-q", "--label", "tier=y").stdout.split() == []
            assert harness.cricctl(d, "pods", "-q", "--state", "notready").stdout.split() == []
            assert harness.cricctl(d, "pods", "-q", "--name", "ct").stdout.split() == [pid]
            js = json.loads(harness.cricctl(d, "pods", "-o", "json").stdout)
            assert js["items"][0]["id"] == pid, js
            insp = json.loads(harness.cricctl(d, "inspectp", pid[:10]).stdout)
            assert insp["status"]["metadata"]["namespace"] == "ns1", insp
            assert insp["info"]["hostnamePath"].endswith("/hostname"), insp
            sysctl = in_ns(d, pid, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start").stdout.strip()
            assert sysctl == "80", sysctl
            ipc = subprocess.run(["nsenter", "--ipc=" + os.path.join(d.state, "ns", pid, "ipc"), "cat",
                                  "/proc/sys/kernel/shmmni"], capture_output=True, text=True).stdout.strip()
            assert ipc == "1234", ipc
            cg_dirs = [m + cgp for m in cgroup_mounts()]
            assert cg_dirs and all(os.path.isdir(p) for p in cg_dirs), cg_dirs
            bad = dict(conf, metadata=dict(conf["metadata"], name="bad"))
            bad["linux"] = {"sysctls": {"kernel.panic": "1"}}
            with open(path, "w") as f:
                json.dump(bad, f)
            p = harness.cricctl(d, "runp", path, check=False)
            assert p.returncode == 1 and "kernel.panic" in p.stderr and "not namespaced" in p.stderr, p.stderr
            assert "Stopped sandbox" in harness.cricctl(d, "stopp", pid).stdout
            assert "Removed sandbox" in harness.cricctl(d, "rmp", pid).stdout
            # Removed on the thread pool after the reply.
            harness.poll(lambda: not any(os.path.isdir(p) for p in cg_dirs), timeout=20)
            assert not any(os.path.isdir(p) for p in cg_dirs), cg_dirs
            assert harness.cricctl(d, "pods", "-q").stdout == ""
    finally:
        for m in cgroup_mounts():
            for sub in (cgp, os.path.dirname(cgp)):
                try:
                    os.rmdir(m + sub)
                except OSError:
                    pass
        net.cleanup()


def cgroup_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.append(left.split()[4])
    return out


if __name__ == "__main__":
    need_env()
    harness.run_tests([test_basic_network_dns_and_idempotence, test_host_port, test_failing_plugins_leave_nothing,
                       test_crash_during_add_rolls_back,
                       test_missing_config, test_concurrent_20, test_kill9_recovery, test_network_check_after_restart,
                       test_cricctl_sysctls_cgroups])
