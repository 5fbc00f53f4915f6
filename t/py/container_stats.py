"""Stats RPCs (ContainerStats, ListContainerStats, PodSandboxStats,
ListPodSandboxStats) and cricctl stats/statsp, with real runc containers
that burn CPU, hold memory and write files, in a pod on a CNI bridge."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import ctrlib  # noqa: E402
import harness  # noqa: E402
import sandbox_net  # noqa: E402
from harness import wait_for  # noqa: E402

ENV = None
PARENT = "/cric-test-%d/statspod" % os.getpid()
MB = 1000 * 1000


def pb():
    return harness.pb2()


def ctr_stats(cid):
    return ENV.cl.runtime("ContainerStats", pb().ContainerStatsRequest(container_id=cid)).stats


def list_ctr_stats(**flt):
    req = pb().ListContainerStatsRequest()
    for k, v in flt.items():
        if k == "labels":
            for lk, lv in v.items():
                req.filter.label_selector[lk] = lv
        else:
            setattr(req.filter, k, v)
    return ENV.cl.runtime("ListContainerStats", req).stats


def setup_pod():
    """A pod with its own cgroup parent on the CNI bridge: a CPU burner, a
    container holding ~12 MB of anonymous memory, one that wrote 2 MB."""
    e = ENV
    cfg = e.pod_config("stats", host_net=False)
    cfg.linux.cgroup_parent = PARENT
    cfg.labels["app"] = "statstest"
    pod = e.cl.runtime("RunPodSandbox", pb().RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
    burn = e.run(pod, cfg, "burn", ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done & wait"],
                 labels={"role": "burn"})
    mem = e.run(pod, cfg, "mem", ["sh", "-c", "trap 'exit 0' TERM; x=$(head -c 12000000 /dev/zero | tr '\\0' a); "
                                              "echo held; sleep 100000 & wait"], labels={"role": "mem"})
    disk = e.run(pod, cfg, "disk", ["sh", "-c", "trap 'exit 0' TERM; head -c 2000000 /dev/zero > /big; "
                                                "mkdir /d1 /d2; echo wrote; sleep 100000 & wait"])
    wait_for(lambda: "held" in e.output(cfg, "mem"), timeout=60, what="memory held")
    wait_for(lambda: "wrote" in e.output(cfg, "disk"), timeout=60, what="file written")
    return pod, cfg, burn, mem, disk


def test_container_stats():
    pod, cfg, burn, mem, disk = STATE
    s1 = ctr_stats(burn)
    assert s1.attributes.id == burn and s1.attributes.metadata.name == "burn", s1.attributes
    assert s1.attributes.labels["role"] == "burn"
    time.sleep(0.5)
    s2 = ctr_stats(burn)
    c1, c2 = s1.cpu.usage_core_nano_seconds.value, s2.cpu.usage_core_nano_seconds.value
    assert c2 > c1 > 0, (c1, c2)
    assert s2.cpu.timestamp > s1.cpu.timestamp
    # The second reading has a rate: a busy loop uses a good share of a core.
    assert s2.cpu.HasField("usage_nano_cores") and s2.cpu.usage_nano_cores.value > 100 * 1000 * 1000, s2.cpu
    m = ctr_stats(mem).memory
    assert m.working_set_bytes.value >= 12 * MB, m
    assert m.usage_bytes.value >= m.working_set_bytes.value and m.rss_bytes.value >= 12 * MB, m
    assert m.page_faults.value > 0
    w = ctr_stats(disk).writable_layer
    assert w.used_bytes.value >= 2 * MB and w.inodes_used.value >= 3, w
    assert w.fs_id.mountpoint.endswith("/containers"), w.fs_id
    # The busy loop writes nothing.
    assert ctr_stats(burn).writable_layer.used_bytes.value < 2 * MB


def test_list_filters():
    pod, cfg, burn, mem, disk = STATE
    ids = {s.attributes.id for s in list_ctr_stats()}
    assert {burn, mem, disk} <= ids, ids
    assert [s.attributes.id for s in list_ctr_stats(id=burn[:12])] == [burn]
    assert {s.attributes.id for s in list_ctr_stats(pod_sandbox_id=pod)} == {burn, mem, disk}
    assert [s.attributes.id for s in list_ctr_stats(labels={"role": "mem"})] == [mem]
    assert len(list_ctr_stats(labels={"role": "nope"})) == 0


def test_unknown_ids():
    for method, req in (("ContainerStats", pb().ContainerStatsRequest(container_id="f" * 64)),
                        ("PodSandboxStats", pb().PodSandboxStatsRequest(pod_sandbox_id="f" * 64))):
        try:
            ENV.cl.runtime(method, req)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, (method, err)
            assert "f" * 64 in err.details(), err.details()
        else:
            raise AssertionError("%s of an unknown id succeeded" % method)
    try:
        ENV.cl.runtime("ContainerStats", pb().ContainerStatsRequest())
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    else:
        raise AssertionError("ContainerStats without an id succeeded")


def test_exited_container():
    e = ENV
    pod, cfg, burn, mem, disk = STATE
    done = e.run(pod, cfg, "done", ["sh", "-c", "echo x > /file"])
    e.wait_state(done, pb().CONTAINER_EXITED)
    s = ctr_stats(done)
    assert not s.HasField("cpu") and not s.HasField("memory"), s
    assert s.writable_layer.inodes_used.value >= 2, s.writable_layer
    e.remove(done)


def test_pod_stats():
    pod, cfg, burn, mem, disk = STATE
    req = pb().PodSandboxStatsRequest(pod_sandbox_id=pod)
    s1 = ENV.cl.runtime("PodSandboxStats", req).stats
    time.sleep(0.5)
    s = ENV.cl.runtime("PodSandboxStats", req).stats
    assert s.attributes.id == pod and s.attributes.metadata.name == "stats", s.attributes
    assert s.attributes.labels["app"] == "statstest"
    lx = s.linux
    assert lx.cpu.usage_core_nano_seconds.value > s1.linux.cpu.usage_core_nano_seconds.value > 0
    assert lx.cpu.usage_nano_cores.value > 100 * 1000 * 1000, lx.cpu
    assert lx.memory.working_set_bytes.value >= 12 * MB, lx.memory
    assert lx.process.process_count.value >= 6, lx.process  # 3 shells + loop/sleep children
    assert {c.attributes.id for c in lx.containers} == {burn, mem, disk}
    # The pod's CNI interface, as kubelet reads it.
    assert lx.network.default_interface.name == "eth0", lx.network
    names = [i.name for i in lx.network.interfaces]
    assert "eth0" in names and "lo" not in names, names
    ip = ENV.cl.runtime("PodSandboxStatus", pb().PodSandboxStatusRequest(pod_sandbox_id=pod)).status.network.ip
    # 20 kB of UDP from the host over the bridge arrive on the pod's eth0.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as so:
        for _ in range(20):
            so.sendto(b"x" * 1000, (ip, 9))
    before = lx.network.default_interface.rx_bytes.value
    wait_for(lambda: ENV.cl.runtime("PodSandboxStats", req).stats.linux.network.default_interface.rx_bytes.value
             >= before + 20000, what="pod rx bytes")
    # List with filters.
    lreq = pb().ListPodSandboxStatsRequest()
    lreq.filter.label_selector["app"] = "statstest"
    got = ENV.cl.runtime("ListPodSandboxStats", lreq).stats
    assert [p.attributes.id for p in got] == [pod]
    lreq.filter.label_selector["app"] = "other"
    assert len(ENV.cl.runtime("ListPodSandboxStats", lreq).stats) == 0


def test_cricctl():
    e = ENV
    pod, cfg, burn, mem, disk = STATE
    out = harness.cricctl(e.d, "stats", "-s", "1").stdout
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["CONTAINER", "NAME", "CPU"], out
    row = [ln for ln in lines if ln.startswith(burn[:13])]
    assert row, out
    cpu = float(row[0].split()[2])
    assert cpu > 10, out
    memrow = [ln for ln in lines if ln.startswith(mem[:13])][0].split()
    assert memrow[3].endswith("MB"), out
    js = json.loads(harness.cricctl(e.d, "stats", "-o", "json", "--id", disk).stdout)
    assert js["stats"][0]["attributes"]["id"] == disk, js
    assert int(js["stats"][0]["writableLayer"]["usedBytes"]["value"]) >= 2 * MB, js
    out = harness.cricctl(e.d, "statsp", "-s", "1", "--label", "app=statstest").stdout
    lines = out.splitlines()
    assert lines[0].split()[0] == "POD" and len(lines) == 2 and lines[1].startswith(pod[:13]), out
    bad = harness.cricctl(e.d, "stats", "--seconds", "x", check=False)
    assert bad.returncode != 0 and "--seconds" in bad.stderr, bad


STATE = None


def main():
    global ENV, STATE
    ctrlib.need_env()
    sandbox_net.need_env()
    net = sandbox_net.Net("s", portmap=False)
    try:
        d = harness.Daemon()
        extra = {"network": {"config_dir": net.conf_dir, "plugin_dirs": [sandbox_net.PLUGIN_DIR]}}
        with ctrlib.Env(extra=extra, daemon=d) as e:
            ENV = e
            STATE = setup_pod()
            harness.run_tests([test_container_stats, test_list_filters, test_unknown_ids, test_exited_container,
                               test_pod_stats, test_cricctl])
    finally:
        net.cleanup()


if __name__ == "__main__":
    main()
