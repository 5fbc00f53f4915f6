#!/usr/bin/python3
"""cricctl against a real cricd: version and info, readable and -o json/yaml, errors."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, cricctl, pb2, run_tests  # noqa: E402

CRICCTL = os.path.join(harness.BUILDDIR, "cricctl")


def test_version():
    with Daemon() as d:
        want = d.client().runtime("Version")
        out = cricctl(d, "version").stdout
        fields = dict(line.split(":", 1) for line in out.splitlines())
        fields = {k: v.strip() for k, v in fields.items()}
        assert fields == {"Version": want.version, "RuntimeName": want.runtime_name,
                          "RuntimeVersion": want.runtime_version, "RuntimeApiVersion": want.runtime_api_version}, out
        j = json.loads(cricctl(d, "version", "-o", "json").stdout)
        assert j == {"version": want.version, "runtimeName": "cricd", "runtimeVersion": want.runtime_version,
                     "runtimeApiVersion": "v1"}, j
        y = cricctl(d, "version", "--output=yaml").stdout
        assert "runtimeName: cricd\n" in y, y


def test_info():
    with Daemon() as d:
        out = cricctl(d, "info").stdout
        assert "RuntimeReady: true" in out, out
        assert "NetworkReady: false (NetworkPluginNotReady" in out, out
        j = json.loads(cricctl(d, "info", "-o", "json").stdout)
        conds = {c["type"]: c for c in j["status"]["conditions"]}
        assert conds["RuntimeReady"]["status"] is True, j
        assert "status" not in conds["NetworkReady"], j  # false is a default: omitted as protojson does
        assert conds["NetworkReady"]["reason"] == "NetworkPluginNotReady", j
        assert j["config"]["listen"] == d.sock, j  # info values are embedded as JSON, like crictl info
        assert [h.get("name", "") for h in j["runtimeHandlers"]] == ["", "runc", "crun"], j
        y = cricctl(d, "info", "-o", "yaml").stdout
        assert "  listen: " + d.sock + "\n" in y, y


def test_endpoint_from_env_and_errors():
    with Daemon() as d:
        env = dict(os.environ, CONTAINER_RUNTIME_ENDPOINT="unix://" + d.sock)
        p = subprocess.run([CRICCTL, "version"], capture_output=True, text=True, env=env)
        assert p.returncode == 0 and "RuntimeName:  cricd" in p.stdout, p
        p = cricctl(d, "version", "-o", "xml", check=False)
        assert p.returncode == 2 and "xml" in p.stderr, p
        p = cricctl(d, "frobnicate", check=False)
        assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr, p
        p = subprocess.run([CRICCTL, "--help"], capture_output=True, text=True)
        assert p.returncode == 0 and "version" in p.stdout and "info" in p.stdout, p
    # nobody listening
    p = subprocess.run([CRICCTL, "--endpoint", "unix:///nonexistent/cricd.sock", "--timeout", "2s", "version"],
                       capture_output=True, text=True)
    assert p.returncode == 1, p
    assert p.stderr.startswith("cricctl: ") and "/nonexistent/cricd.sock" in p.stderr, p.stderr
    p = subprocess.run([CRICCTL, "--timeout", "soon", "version"], capture_output=True, text=True)
    assert p.returncode == 2 and "soon" in p.stderr, p


def test_grpc_error_reported():
    """A server without Status (the transport test server): the gRPC status name and message."""
    import tempfile
    import time
    srv = os.path.join(harness.BUILDDIR, "t", "grpc_testsrv")
    if not os.path.exists(srv):
        raise harness.SkipTest("t/grpc_testsrv not built")
    tmp = tempfile.mkdtemp(prefix="cric-ctl-")
    sock = os.path.join(tmp, "s.sock")
    proc = subprocess.Popen([srv, sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not harness.connectable(sock):
            assert proc.poll() is None and time.time() < deadline, "test server did not start"
            time.sleep(0.02)
        p = subprocess.run([CRICCTL, "-r", "unix://" + sock, "info"], capture_output=True, text=True)
        assert p.returncode == 1, p
        assert p.stderr.startswith("cricctl: UNIMPLEMENTED: "), p.stderr
        assert "Status" in p.stderr, p.stderr
    finally:
        proc.terminate()
        proc.wait(10)
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests([test_version, test_info, test_endpoint_from_env_and_errors, test_grpc_error_reported])
