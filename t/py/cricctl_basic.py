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


if __name__ == "__main__":
    run_tests([test_version, test_info, test_endpoint_from_env_and_errors])
