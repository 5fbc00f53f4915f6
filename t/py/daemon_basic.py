#!/usr/bin/python3
"""cricd as a whole: the runtime RPCs, config handling, signals, start-up errors."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Daemon, pb2, run_tests  # noqa: E402

import grpc  # noqa: E402

CRICD = os.path.join(harness.BUILDDIR, "cricd")


def config_with(d, **sections):
    """A config file text for daemon d: its own CNI config dir plus overrides."""
    cfg = {"network": {"config_dir": os.path.join(d.dir, "net.d")}}
    for k, v in sections.items():
        cfg[k] = v
    return "// test config\n" + json.dumps(cfg, indent=2) + "\n"


def test_version():
    with Daemon() as d:
        r = d.client().runtime("Version", pb2().VersionRequest(version="v1"))
        assert r.runtime_name == "cricd", r
        assert r.runtime_api_version == "v1", r
        assert r.version == "0.1.0", r
        out = subprocess.run([CRICD, "--version"], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "cricd " + r.runtime_version, (out, r.runtime_version)


def conditions(resp):
    return {c.type: c for c in resp.status.conditions}


def test_status_network_ready_follows_cni_dir():
    d = Daemon()
    d.config = config_with(d)
    with d:
        c = d.client()
        r = c.runtime("Status")
        conds = conditions(r)
        assert conds["RuntimeReady"].status, r
        net = conds["NetworkReady"]
        assert not net.status, r
        assert net.reason == "NetworkPluginNotReady", r
        assert os.path.join(d.dir, "net.d") in net.message, r
        assert len(r.info) == 0, r  # only verbose adds info
        names = [h.name for h in r.runtime_handlers]
        assert names == ["", "runc", "crun"], names

        os.mkdir(os.path.join(d.dir, "net.d"))
        with open(os.path.join(d.dir, "net.d", "README"), "w") as f:
            f.write("not a network config\n")
        assert not conditions(c.runtime("Status"))["NetworkReady"].status
        with open(os.path.join(d.dir, "net.d", "10-test.conflist"), "w") as f:
            f.write('{"cniVersion": "1.0.0", "name": "t", "plugins": [{"type": "loopback"}]}\n')
        net = conditions(c.runtime("Status"))["NetworkReady"]
        assert net.status and net.reason == "", net


def test_status_verbose_has_config():
    with Daemon() as d:
        r = d.client().runtime("Status", pb2().StatusRequest(verbose=True))
        cfg = json.loads(r.info["config"])
        assert cfg["listen"] == d.sock, cfg
        assert cfg["root"] == d.root, cfg
        assert cfg["log_level"] == "debug", cfg
        assert cfg["runtime"]["default"] == "runc", cfg


def test_runtime_config_cgroup_driver():
    pb = pb2()
    with Daemon() as d:
        r = d.client().runtime("RuntimeConfig")
        assert r.linux.cgroup_driver == pb.CGROUPFS, r
    with Daemon(args=["--cgroup-driver", "systemd"]) as d:
        r = d.client().runtime("RuntimeConfig")
        assert r.linux.cgroup_driver == pb.SYSTEMD, r


def test_update_runtime_config():
    pb = pb2()
    with Daemon() as d:
        c = d.client()
        req = pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.88.0.0/16,fd00::/64")))
        c.runtime("UpdateRuntimeConfig", req)
        d.wait_log("pod CIDR set to 10.88.0.0/16,fd00::/64")
        c.runtime("UpdateRuntimeConfig")  # empty: changes nothing
        bad = pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.88.0.0/33")))
        try:
            c.runtime("UpdateRuntimeConfig", bad)
            raise AssertionError("bad CIDR accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            assert "10.88.0.0/33" in e.details(), e.details()


def test_unimplemented_methods():
    pb = pb2()
    with Daemon() as d:
        c = d.client()
        for svc, method, req in [("RuntimeService", "Attach", pb.AttachRequest(container_id="x")),
                                 ("ImageService", "StreamImages", pb.StreamImagesRequest())]:
            try:
                c.call(svc, method, req)
                raise AssertionError("%s answered" % method)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNIMPLEMENTED, (method, e)
        # and the daemon is still fine
        c.runtime("Version")


def test_sighup_reloads_log_level():
    d = Daemon(log_level=None)
    d.config = config_with(d, log_level="info")
    with d:
        c = d.client()
        c.runtime("Version")
        assert "Version: OK" not in d.logtext()  # per-call lines are debug
        d.write_config(config_with(d, log_level="debug", cgroup_driver="systemd"))
        d.proc.send_signal(signal.SIGHUP)
        log = d.wait_log("reloaded configuration")
        assert "log_level is now debug" in log, log
        assert "ignored until restart: cgroup_driver" in log, log
        c.runtime("Version")
        d.wait_log("Version: OK")
        # ignored keys really are ignored
        assert c.runtime("RuntimeConfig").linux.cgroup_driver == pb2().CGROUPFS
        # a broken file on reload keeps the daemon and its settings
        d.write_config('{\n  "log_level": "debug",\n  "bogus": 1\n}\n')
        d.proc.send_signal(signal.SIGHUP)
        log = d.wait_log("keeping the running configuration")
        assert "cricd.conf:3: unknown key 'bogus'" in log, log
        c.runtime("Version")


def test_sigterm_graceful():
    with Daemon() as d:
        d.client().runtime("Version")
        rc = d.stop(signal.SIGTERM)
        assert rc == 0, (rc, d.logtext())
        assert not os.path.exists(d.sock), os.listdir(d.dir)
    with Daemon() as d:
        rc = d.stop(signal.SIGINT)
        assert rc == 0, (rc, d.logtext())
        assert not os.path.exists(d.sock)


def test_inflight_call_answered_on_sigterm():
    """A call whose request is half sent when SIGTERM arrives still gets its answer."""
    import h2.config
    import h2.connection
    import h2.events
    pb = pb2()
    with Daemon() as d:
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.sock)
        s.settimeout(10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", "/runtime.v1.RuntimeService/Version"),
                                (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")])
        body = pb.VersionRequest(version="v1").SerializeToString()
        msg = b"\0" + len(body).to_bytes(4, "big") + body
        conn.send_data(sid, msg[:3])
        s.sendall(conn.data_to_send())
        time.sleep(0.2)  # let the server see the stream open
        d.proc.send_signal(signal.SIGTERM)
        d.wait_log("stopping")
        conn.send_data(sid, msg[3:], end_stream=True)
        s.sendall(conn.data_to_send())
        # Python's h2 drops everything after a GOAWAY, so read frames by hand.
        import hpack
        from hyperframe.frame import Frame, DataFrame, HeadersFrame, GoAwayFrame
        dec = hpack.Decoder()
        buf, data, headers, done, goaway = b"", b"", [], False, False
        while not done:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9:
                frame, length = Frame.parse_frame_header(buf[:9])
                if len(buf) < 9 + length:
                    break
                frame.parse_body(memoryview(buf[9:9 + length]))
                buf = buf[9 + length:]
                if isinstance(frame, GoAwayFrame):
                    goaway = True
                elif isinstance(frame, HeadersFrame) and frame.stream_id == sid:
                    headers += dec.decode(frame.data)
                    done = done or "END_STREAM" in frame.flags
                elif isinstance(frame, DataFrame) and frame.stream_id == sid:
                    data += frame.data
                    done = done or "END_STREAM" in frame.flags
        trailers = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                    for k, v in headers}
        s.close()
        assert done, (trailers, data)
        assert trailers.get("grpc-status") == "0", trailers
        resp = pb.VersionResponse.FromString(data[5:])
        assert resp.runtime_name == "cricd", resp
        assert goaway, "no GOAWAY before the stop"
        rc = d.proc.wait(20)
        assert rc == 0, (rc, d.logtext())
        d.proc = None
        assert not os.path.exists(d.sock)


def test_print_config():
    d = Daemon()
    try:
        d.write_config('// comment\n{ "log_level": "warn", "images": { "pinned": ["busybox"] } }\n')
        p = subprocess.run([CRICD, "--config", d.config_path, "--root", "/srv/cricd", "--print-config"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p
        cfg = json.loads(p.stdout)
        assert cfg["log_level"] == "warn", cfg
        assert cfg["root"] == "/srv/cricd", cfg
        assert cfg["images"]["pinned"] == ["busybox"], cfg
        assert cfg["grpc"]["max_recv_msg_size"] == 16777216, cfg
        # the built-in defaults are the shipped conf/cricd.conf
        p1 = subprocess.run([CRICD, "--config", "", "--print-config"], capture_output=True, text=True, check=True)
        p2 = subprocess.run([CRICD, "--config", os.path.join(harness.SRCDIR, "conf", "cricd.conf"),
                             "--print-config"], capture_output=True, text=True, check=True)
        assert p1.stdout == p2.stdout
        assert not os.path.exists(d.sock)
    finally:
        d.cleanup()


def test_bad_config_refused():
    d = Daemon()
    d.config = '{\n  "listen": "/x.sock",\n  "grpc": {\n    "max_recv_msg_size": "16M"\n  }\n}\n'
    try:
        try:
            d.start()
            raise AssertionError("cricd started with a bad config")
        except RuntimeError as e:
            assert "cricd.conf:4: 'grpc.max_recv_msg_size': expected an unsigned integer, got string" in str(e), e
        d.config = '{\n  "unknown_key": 1\n}\n'
        try:
            d.start()
            raise AssertionError("cricd started with a bad config")
        except RuntimeError as e:
            assert "cricd.conf:2: unknown key 'unknown_key'" in str(e), e
        p = subprocess.run([CRICD, "--config", os.path.join(d.dir, "missing.conf")], capture_output=True, text=True)
        assert p.returncode != 0 and "missing.conf" in p.stderr, p
        p = subprocess.run([CRICD, "--log-level", "chatty", "--print-config"], capture_output=True, text=True)
        assert p.returncode != 0 and "chatty" in p.stderr, p
        p = subprocess.run([CRICD, "--bogus-flag"], capture_output=True, text=True)
        assert p.returncode == 2, p
    finally:
        d.cleanup()


def test_live_socket_refused_stale_replaced():
    with Daemon() as d:
        second = Daemon()
        second.sock = d.sock
        try:
            second.start(wait=False)
            rc = second.proc.wait(20)
            assert rc != 0, rc
            assert d.sock in second.logtext(), second.logtext()
            second.proc = None
        finally:
            second.cleanup()
        d.client().runtime("Version")  # the first one is untouched
    # a stale socket (nobody listening) is replaced
    d = Daemon()
    try:
        os.makedirs(os.path.dirname(d.sock), exist_ok=True)
        s = socket.socket(socket.AF_UNIX)
        s.bind(d.sock)
        s.close()
        d.start(wait=False)
        deadline = time.time() + 20
        while True:
            try:
                d.client().runtime("Version", timeout=2)
                break
            except grpc.RpcError:
                assert d.proc.poll() is None, d.logtext()
                assert time.time() < deadline, d.logtext()
                time.sleep(0.05)
    finally:
        d.cleanup()


def test_creates_dirs():
    with Daemon() as d:
        assert os.path.isdir(d.root) and os.path.isdir(d.state)
        assert oct(os.stat(d.sock).st_mode & 0o777) == oct(0o660), oct(os.stat(d.sock).st_mode)


if __name__ == "__main__":
    run_tests([test_version, test_status_network_ready_follows_cni_dir, test_status_verbose_has_config,
               test_runtime_config_cgroup_driver, test_update_runtime_config, test_unimplemented_methods,
               test_sighup_reloads_log_level, test_sigterm_graceful, test_inflight_call_answered_on_sigterm,
               test_print_config, test_bad_config_refused, test_live_socket_refused_stale_replaced,
               test_creates_dirs])
