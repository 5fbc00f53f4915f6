"""ImageService end to end: cricd + grpcio client + cricctl against a real
docker-registry (open and htpasswd)."""
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "registry"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cricreg  # noqa: E402
from harness import SKIP, Daemon, cricctl, pb2, run_tests  # noqa: E402

reg = None
basic = None
imgs = {}


def config(pinned=()):
    return json.dumps({"images": {
        "registries": [{"host": reg.host, "insecure": True}, {"host": basic.host, "insecure": True}],
        "pinned": list(pinned), "max_concurrent_downloads": 2}})


def spec(ref):
    return pb2().ImageSpec(image=ref)


def test_pull_list_status_remove():
    pb = pb2()
    ref = reg.host + "/busybox:latest"
    with Daemon(config=config()) as d:
        c = d.client()
        r = c.image("PullImage", pb.PullImageRequest(image=spec(ref)))
        assert r.image_ref == imgs["busybox"].config_digest, r
        lst = c.image("ListImages").images
        assert [i.id for i in lst] == [r.image_ref]
        assert lst[0].repo_tags == [ref]
        assert lst[0].repo_digests == [reg.host + "/busybox@" + imgs["busybox_digest"]]
        assert lst[0].size > 1000000
        f = c.image("ListImages", pb.ListImagesRequest(filter=pb.ImageFilter(image=spec(r.image_ref))))
        assert len(f.images) == 1
        f = c.image("ListImages", pb.ListImagesRequest(filter=pb.ImageFilter(image=spec("nothere"))))
        assert len(f.images) == 0
        st = c.image("ImageStatus", pb.ImageStatusRequest(image=spec(ref), verbose=True))
        assert st.image.id == r.image_ref
        info = json.loads(st.info["info"])
        assert info["config"]["Cmd"] == ["/bin/sh"] and len(info["chainIDs"]) == 3
        st = c.image("ImageStatus", pb.ImageStatusRequest(image=spec(reg.host + "/absent:latest")))
        assert not st.HasField("image")
        fs = c.image("ImageFsInfo").image_filesystems[0]
        assert fs.used_bytes.value > 1000000 and fs.inodes_used.value > 5
        assert fs.fs_id.mountpoint.endswith("/images")
        # a pull of an image already there is quick and returns the same ID
        r2 = c.image("PullImage", pb.PullImageRequest(image=spec(reg.host + "/busybox@" + imgs["busybox_digest"])))
        assert r2.image_ref == r.image_ref
        c.image("RemoveImage", pb.RemoveImageRequest(image=spec(r.image_ref)))
        assert len(c.image("ListImages").images) == 0
        c.image("RemoveImage", pb.RemoveImageRequest(image=spec(r.image_ref)))  # absent: OK
        layers = os.path.join(d.root, "images", "layers")
        assert os.listdir(layers) == []
        # unknown image: NOT_FOUND naming it
        import grpc
        try:
            c.image("PullImage", pb.PullImageRequest(image=spec(reg.host + "/nothere:v1")))
            raise AssertionError("pull of an unknown image succeeded")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
            assert "nothere" in e.details()
        try:
            c.image("PullImage", pb.PullImageRequest(image=spec("Not A Ref")))
            raise AssertionError("invalid ref accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        c.close()


def test_concurrent_and_restart():
    pb = pb2()
    ref = reg.host + "/busybox:latest"
    d = Daemon(config=config())
    try:
        d.start()
        c = d.client()
        results = []

        def one(r):
            results.append(c.image("PullImage", pb.PullImageRequest(image=spec(r)), timeout=60).image_ref)
        ts = [threading.Thread(target=one, args=(r,)) for r in (ref, ref, ref, reg.host + "/other:v1")]
        for t in ts:
            t.start()
        # the loop stays responsive while pulls run
        assert c.runtime("Version").runtime_name == "cricd"
        for t in ts:
            t.join()
        assert sorted(results) == sorted([imgs["busybox"].config_digest] * 3 + [imgs["other"].config_digest])
        c.close()
        d.stop()
        d.start()
        c = d.client()
        assert len(c.image("ListImages").images) == 2
        c.close()
    finally:
        d.cleanup()


def interrupted_pull(sig):
    """cricd stopped (sig) while a layer download hangs: it exits (cleanly on
    SIGTERM, after the grace period) and the restarted daemon has the store
    as it was before the pull."""
    pb = pb2()
    import signal
    import time
    liar = cricreg.LyingRegistry()
    try:
        stall = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("s", os.urandom(300000)).bytes()),
                               cricreg.Layer(cricreg.TarBuilder().file("t", "t").bytes())])
        ref = liar.add_image("stall:latest", stall)
        liar.stall.add(stall.layers[0].digest)
        cfg = json.loads(config())
        cfg["images"]["registries"].append({"host": liar.host, "insecure": True})
        d = Daemon(config=json.dumps(cfg))
        try:
            d.start()
            c = d.client()
            c.image("PullImage", pb.PullImageRequest(image=spec(reg.host + "/other:v1")))
            images = os.path.join(d.root, "images")

            def tree():
                return sorted(os.path.relpath(os.path.join(p, n), images)
                              for p, ds, fs in os.walk(images) for n in ds + fs)
            before = tree()
            fut = c.channel.unary_unary("/runtime.v1.ImageService/PullImage",
                                        request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=pb.PullImageResponse.FromString).future(
                pb.PullImageRequest(image=spec(ref)), timeout=60)
            deadline = time.time() + 20
            while not any(n.endswith(".blob") for n in os.listdir(os.path.join(images, "tmp"))):
                assert time.time() < deadline, "download never started"
                time.sleep(0.05)
            time.sleep(0.3)
            d.proc.send_signal(sig)
            rc = d.proc.wait(30)
            d.proc = None
            if sig == signal.SIGTERM:
                assert rc == 0, "cricd exited %d:\n%s" % (rc, d.logtext()[-3000:])
                assert tree() == before, set(tree()) ^ set(before)
            fut.exception()
            c.close()
            d.start()
            c = d.client()
            assert [i.id for i in c.image("ListImages").images] == [imgs["other"].config_digest]
            assert tree() == before, set(tree()) ^ set(before)
            c.close()
        finally:
            d.cleanup()
    finally:
        liar.stop()


def test_killed_mid_pull():
    import signal
    interrupted_pull(signal.SIGKILL)


def test_sigterm_mid_pull():
    import signal
    interrupted_pull(signal.SIGTERM)


def test_daemon_links_no_pull_libs():
    """Pulling lives in cric-pull: cricd itself links no libcurl, libarchive
    or libcrypto (daemon memory); cric-pull does."""
    import subprocess
    from harness import BUILDDIR
    libs = subprocess.run(["ldd", os.path.join(BUILDDIR, "cricd")], capture_output=True, text=True,
                          check=True).stdout
    for name in ("libcurl", "libarchive", "libcrypto"):
        assert name not in libs, libs
    libs = subprocess.run(["ldd", os.path.join(BUILDDIR, "cric-pull")], capture_output=True, text=True,
                          check=True).stdout
    assert "libcurl" in libs and "libarchive" in libs, libs


def pull_helpers(pid):
    """Pids of cricd's cric-pull children."""
    kids = []
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, t)) as f:
            kids += [int(k) for k in f.read().split()]
    out = []
    for k in kids:
        try:
            with open("/proc/%d/comm" % k) as f:
                if f.read().strip() == "cric-pull":
                    out.append(k)
        except OSError:
            pass
    return out


def test_pull_helper_killed():
    """Two pulls of one image share one cric-pull; killing it fails both with
    a clear error, cricd keeps serving and the store is as before."""
    pb = pb2()
    import grpc
    import signal
    import time
    liar = cricreg.LyingRegistry()
    try:
        stall = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("s", os.urandom(300000)).bytes())])
        ref = liar.add_image("stall:latest", stall)
        liar.stall.add(stall.layers[0].digest)
        cfg = json.loads(config())
        cfg["images"]["registries"].append({"host": liar.host, "insecure": True})
        with Daemon(config=json.dumps(cfg)) as d:
            c = d.client()
            images = os.path.join(d.root, "images")

            def tree():
                return sorted(os.path.relpath(os.path.join(p, n), images)
                              for p, ds, fs in os.walk(images) for n in ds + fs)
            before = tree()
            call = c.channel.unary_unary("/runtime.v1.ImageService/PullImage",
                                         request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=pb.PullImageResponse.FromString)
            futs = [call.future(pb.PullImageRequest(image=spec(ref)), timeout=60) for _ in range(2)]
            deadline = time.time() + 20
            while not any(n.endswith(".blob") for n in os.listdir(os.path.join(images, "tmp"))):
                assert time.time() < deadline, "download never started"
                time.sleep(0.05)
            helpers = pull_helpers(d.proc.pid)
            assert len(helpers) == 1, helpers
            os.kill(helpers[0], signal.SIGKILL)
            for f in futs:
                e = f.exception()
                assert isinstance(e, grpc.RpcError), e
                assert "image pull helper exited with signal 9" in e.details(), e.details()
            assert c.runtime("Version").runtime_name == "cricd"
            deadline = time.time() + 20
            while tree() != before:  # the trash is emptied on the thread pool
                assert time.time() < deadline, set(tree()) ^ set(before)
                time.sleep(0.05)
            assert [i.id for i in c.image("ListImages").images] == []
            c.close()
    finally:
        liar.stop()


def test_pinned():
    pb = pb2()
    import grpc
    ref = reg.host + "/other:v1"
    with Daemon(config=config(pinned=[ref])) as d:
        c = d.client()
        c.image("PullImage", pb.PullImageRequest(image=spec(ref)))
        st = c.image("ImageStatus", pb.ImageStatusRequest(image=spec(ref)))
        assert st.image.pinned
        try:
            c.image("RemoveImage", pb.RemoveImageRequest(image=spec(ref)))
            raise AssertionError("pinned image removed")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "pinned" in e.details(), e
        assert len(c.image("ListImages").images) == 1
        c.close()


def test_auth_and_secrets():
    pb = pb2()
    import grpc
    ref = basic.host + "/other:v1"
    with Daemon(config=config()) as d:
        c = d.client()
        try:
            c.image("PullImage", pb.PullImageRequest(image=spec(ref),
                                                     auth=pb.AuthConfig(username="tester", password="Wr0ngPassw0rd")))
            raise AssertionError("wrong credentials accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
            assert "Wr0ngPassw0rd" not in e.details()
        r = c.image("PullImage", pb.PullImageRequest(image=spec(ref),
                                                     auth=pb.AuthConfig(username="tester", password="s3cret")))
        assert r.image_ref == imgs["other"].config_digest
        st = c.image("ImageStatus", pb.ImageStatusRequest(image=spec(ref), verbose=True))
        c.close()
        d.stop()
        log = d.logtext()
        assert "s3cret" not in log and "Wr0ngPassw0rd" not in log
        assert "s3cret" not in str(st)
        for dirpath, _, files in os.walk(d.dir):
            for n in files:
                p = os.path.join(dirpath, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    data = open(p, "rb").read()
                    assert b"s3cret" not in data and b"Wr0ngPassw0rd" not in data, p


def test_cricctl():
    ref = reg.host + "/busybox:latest"
    with Daemon(config=config()) as d:
        out = cricctl(d, "pull", ref).stdout
        assert imgs["busybox"].config_digest in out, out
        out = cricctl(d, "pull", "--creds", "tester:s3cret", basic.host + "/other:v1").stdout
        assert imgs["other"].config_digest in out
        p = cricctl(d, "pull", "--creds", "tester:bad", basic.host + "/busybox:latest", check=False)
        assert p.returncode != 0 and "bad" not in p.stderr.replace("tester:bad", ""), p.stderr
        q = cricctl(d, "images", "-q").stdout.split()
        assert sorted(q) == sorted([imgs["busybox"].config_digest, imgs["other"].config_digest])
        t = cricctl(d, "images", "--digests").stdout
        assert reg.host + "/busybox" in t and imgs["busybox_digest"][7:19] in t, t
        j = json.loads(cricctl(d, "images", "-o", "json").stdout)
        assert len(j["images"]) == 2
        insp = json.loads(cricctl(d, "inspecti", ref).stdout)
        assert insp["status"]["id"] == imgs["busybox"].config_digest
        assert insp["info"]["config"]["Env"] == ["PATH=/usr/bin:/bin"]
        fs = json.loads(cricctl(d, "imagefsinfo").stdout)
        assert int(fs["imageFilesystems"][0]["usedBytes"]["value"]) > 0
        assert "Deleted" in cricctl(d, "rmi", ref).stdout
        assert cricctl(d, "images", "-q").stdout.split() == [imgs["other"].config_digest]
        p = cricctl(d, "inspecti", ref, check=False)
        assert p.returncode != 0


def main():
    if not cricreg.have_registry():
        print("SKIP: docker-registry missing")
        sys.exit(SKIP)
    if os.geteuid() != 0:
        print("SKIP: needs root")
        sys.exit(SKIP)
    global reg, basic
    try:
        reg = cricreg.Registry().start()
        imgs["busybox"] = cricreg.busybox_image()
        imgs["busybox_digest"] = reg.push_image("busybox:latest", imgs["busybox"])[1]
        imgs["other"] = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("other", "o\n").bytes())],
                                      extra_config={"User": "1000"})
        reg.push_image("other:v1", imgs["other"])
        basic = cricreg.Registry(auth="htpasswd", storage=reg.storage).start()
        run_tests([test_pull_list_status_remove, test_concurrent_and_restart, test_killed_mid_pull, test_sigterm_mid_pull, test_pull_helper_killed, test_daemon_links_no_pull_libs, test_pinned, test_auth_and_secrets,
                   test_cricctl])
    finally:
        for r in (reg, basic):
            if r:
                r.stop()


if __name__ == "__main__":
    main()
