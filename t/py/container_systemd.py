"""The systemd cgroup driver: every runtime call carries --systemd-cgroup,
cgroupsPath is "<slice>:cric:<id>", and a cgroupfs-style pod parent is
refused.  This machine has no systemd, so the handler is a wrapper that
records its arguments and runs runc without the flag (runc then takes the
slice form as a plain relative cgroup path)."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import harness  # noqa: E402
import ctrlib  # noqa: E402
from harness import wait_for  # noqa: E402

ctrlib.need_env()
ENV = None
ARGS = None
SLICE = "cric-test-%d.slice" % os.getpid()


def pb():
    return harness.pb2()


def calls():
    with open(ARGS) as f:
        return [line.split() for line in f.read().splitlines()]


def test_runtime_calls_carry_the_flag():
    e = ENV
    cfg = e.pod_config("sd")
    cfg.linux.cgroup_parent = SLICE
    pod = e.cl.runtime("RunPodSandbox", pb().RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
    cid = e.run(pod, cfg, "c", ["sh", "-c", "trap 'exit 0' TERM; echo up; sleep 100 & wait"])
    wait_for(lambda: "up" in e.output(cfg, "c"), what="output")
    with open(os.path.join(e.d.root, "containers", cid, "config.json")) as f:
        spec = json.load(f)
    assert spec["linux"]["cgroupsPath"] == "%s:cric:%s" % (SLICE, cid), spec["linux"]["cgroupsPath"]
    r = e.exec_sync(cid, ["echo", "hi"], timeout=10)
    assert r.exit_code == 0 and r.stdout == b"hi\n", r
    e.stop(cid, timeout=5)
    e.remove(cid)
    # RemoveContainer answers before the runtime's delete has run.
    wait_for(lambda: any("delete" in argv for argv in calls()), what="runtime delete")
    verbs = set()
    for argv in calls():
        assert "--systemd-cgroup" in argv, argv
        verbs.update(a for a in argv if a in ("run", "create", "start", "exec", "kill", "delete", "state"))
    assert {"run", "exec", "delete"} <= verbs or {"create", "start", "exec", "delete"} <= verbs, verbs
    e.cl.runtime("RemovePodSandbox", pb().RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def test_cgroupfs_parent_refused():
    e = ENV
    cfg = e.pod_config("sdbad")
    cfg.linux.cgroup_parent = "/kubepods/besteffort/pod1"
    try:
        e.cl.runtime("RunPodSandbox", pb().RunPodSandboxRequest(config=cfg), timeout=60)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert "/kubepods/besteffort/pod1" in err.details() and "slice" in err.details(), err.details()
    else:
        raise AssertionError("a cgroupfs path was accepted with the systemd driver")
    assert not [p for p in e.cl.runtime("ListPodSandbox").items if p.metadata.name == "sdbad"]


def main():
    global ENV, ARGS
    d = harness.Daemon()
    ARGS = os.path.join(d.dir, "runtime-args")
    wrapper = os.path.join(d.dir, "sd-runtime")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\necho \"$@\" >> %s\nfor a; do shift; [ \"$a\" = --systemd-cgroup ] || set -- \"$@\" \"$a\"; "
                "done\nexec %s \"$@\"\n" % (ARGS, ctrlib.RUNC))
    os.chmod(wrapper, 0o755)
    env = ctrlib.Env(extra={"cgroup_driver": "systemd", "runtime": {"handlers": {
        "runc": {"path": wrapper, "root": os.path.join(d.dir, "runc")}}}}, daemon=d)
    try:
        with env as e:
            ENV = e
            harness.run_tests([test_runtime_calls_carry_the_flag, test_cgroupfs_parent_refused])
    finally:
        # runc made "<its cgroup>/<slice>:cric:<id>" in each hierarchy; runc delete removes it,
        # this catches what a failure left.
        for base, dirs, _ in os.walk("/sys/fs/cgroup"):
            for dn in dirs:
                if dn.startswith(SLICE):
                    try:
                        os.rmdir(os.path.join(base, dn))
                    except OSError:
                        pass
            if base.count("/") > 5:
                dirs[:] = []


if __name__ == "__main__":
    main()
