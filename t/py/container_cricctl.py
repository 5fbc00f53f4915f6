"""cricctl's container commands against a real cricd and runc: create from
crictl-style JSON, start, ps, inspect, exec, logs (also with cricd down),
stop, rm, run."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ctrlib  # noqa: E402

ctrlib.need_env()


def main():
    with ctrlib.Env() as e:
        harness.run_tests([e.bind(t_commands), e.bind(t_run)])


def write(e, name, obj):
    p = os.path.join(e.d.dir, name)
    with open(p, "w") as f:
        json.dump(obj, f)
    return p


def ctl(e, *args, **kw):
    return harness.cricctl(e.d, *args, **kw)


def pod_json(e, name):
    return {"metadata": {"name": name, "uid": "u-" + name, "namespace": "default"},
            "log_directory": os.path.join(e.d.dir, "podlogs", name),
            "linux": {"security_context": {"namespace_options": {"network": "NODE"}}}}


def t_commands(e):
    pj = pod_json(e, "ctlpod")
    pod = e.cl.runtime("RunPodSandbox", e.pb.RunPodSandboxRequest(
        config=e.pod_config("ctlpod"))).pod_sandbox_id
    # A line longer than the shim's 64 KiB buffer becomes P records; logs joins them.
    # stdout and stderr are separate pipes, so their relative order in the log is
    # only certain with a pause between them: "last" comes well after "oops".
    cj = {"metadata": {"name": "web"}, "image": {"image": "test/busybox"},
          "command": ["sh", "-c", "echo first; echo oops >&2; head -c 100000 /dev/zero | tr '\\0' x; echo; "
                                  "trap 'exit 0' TERM; sleep 0.5; echo last; sleep 100 & wait"],
          "log_path": "web.log", "labels": {"tier": "front"}}
    cid = ctl(e, "create", pod, write(e, "c.json", cj), write(e, "p.json", pj)).stdout.strip()
    assert len(cid) == 64, cid
    ps = ctl(e, "ps", "-a").stdout
    assert cid[:13] in ps and "Created" in ps and "web" in ps, ps
    assert ctl(e, "ps", "-q").stdout.strip() == ""      # not running yet
    ctl(e, "start", cid[:12])
    assert ctl(e, "ps", "-q").stdout.strip() == cid
    assert ctl(e, "ps", "-q", "--label", "tier=back").stdout.strip() == ""
    assert ctl(e, "ps", "-q", "--label", "tier=front", "--pod", pod).stdout.strip() == cid
    js = json.loads(ctl(e, "ps", "-o", "json").stdout)
    assert js["containers"][0]["id"] == cid, js
    insp = json.loads(ctl(e, "inspect", cid).stdout)
    assert insp["status"]["state"] == "CONTAINER_RUNNING", insp["status"]
    assert insp["info"]["pid"] > 0 and insp["info"]["runtimeSpec"]["process"]["args"][0] == "sh"
    p = ctl(e, "exec", cid, "sh", "-c", "echo in; echo err >&2; exit 4", check=False)
    assert p.returncode == 4 and p.stdout == "in\n" and p.stderr == "err\n", p
    p = ctl(e, "exec", "--timeout", "1s", cid, "sleep", "30", check=False)
    assert p.returncode != 0 and "DEADLINE" in p.stderr, p
    harness.poll(lambda: "last" in ctl(e, "logs", cid).stdout, interval=0.1)
    p = ctl(e, "logs", cid)
    lines = p.stdout.split("\n")
    assert lines[0] == "first" and lines[1] == "x" * 100000 and lines[2] == "last", [x[:20] for x in lines]
    assert p.stderr == "oops\n", p.stderr
    assert ctl(e, "logs", "--tail", "1", cid).stdout == "last\n"
    ts = ctl(e, "logs", "-t", "--tail", "1", cid).stdout
    assert ts.endswith("Z last\n") and ts[:4].isdigit(), ts
    assert ctl(e, "logs", "--since", "1h", "--tail", "1", cid).stdout == "last\n"
    assert ctl(e, "logs", "--since", "2200-01-01T00:00:00Z", cid).stdout == ""
    # With cricd down the record on disk gives the log path.
    e.cl.close()
    e.d.stop()
    p = ctl(e, "logs", "--root", e.d.root, "--tail", "1", cid[:10])
    assert p.stdout == "last\n", p
    if os.path.exists(e.d.sock):
        os.unlink(e.d.sock)
    e.d.start()
    e.cl = e.d.client()
    assert ctl(e, "ps", "-q").stdout.strip() == cid
    ctl(e, "stop", "-t", "5", cid)
    insp = json.loads(ctl(e, "inspect", cid).stdout)
    assert insp["status"]["state"] == "CONTAINER_EXITED" and insp["status"].get("exitCode", 0) == 0
    ctl(e, "rm", cid)
    assert ctl(e, "ps", "-a", "-q").stdout.strip() == ""
    # logs -f follows until the container exits.
    cj2 = {"metadata": {"name": "short"}, "image": {"image": "test/busybox"},
           "command": ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done"], "log_path": "short.log"}
    cid2 = ctl(e, "create", pod, write(e, "c2.json", cj2), write(e, "p.json", pj)).stdout.strip()
    ctl(e, "start", cid2)
    p = ctl(e, "logs", "-f", cid2, timeout=60)
    assert p.stdout == "line1\nline2\nline3\n", p.stdout
    ctl(e, "rm", cid2)
    p = ctl(e, "create", pod, write(e, "bad.json", {"metadata": {"nmae": "x"}}), write(e, "p.json", pj),
            check=False)
    assert p.returncode != 0 and "nmae" in p.stderr, p


def t_run(e):
    probe = ctl(e, "run", "/nonexistent.json", "/nonexistent.json", check=False)
    assert probe.returncode != 0 and "/nonexistent.json" in probe.stderr
    try:
        e.cl.image("ImageStatus", e.pb.ImageStatusRequest(image=e.pb.ImageSpec(image="test/busybox")))
    except Exception as ex:
        if "UNIMPLEMENTED" in str(ex):
            raise harness.SkipTest("no ImageService in this build")
        raise
    pj = pod_json(e, "runpod")
    cj = {"metadata": {"name": "r"}, "image": {"image": "test/busybox"}, "command": ["sh", "-c", "echo ran"],
          "log_path": "r.log"}
    cid = ctl(e, "run", write(e, "rc.json", cj), write(e, "rp.json", pj)).stdout.strip()
    harness.poll(lambda: ctl(e, "logs", cid).stdout == "ran\n", interval=0.1)
    assert ctl(e, "logs", cid).stdout == "ran\n"


if __name__ == "__main__":
    main()
