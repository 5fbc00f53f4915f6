"""Pulls from a real docker-registry (and from LyingRegistry) through the
puller library (t/image_pull_tool), checking the store after every case."""
import os
import subprocess
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "registry"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cricreg  # noqa: E402
from harness import BUILDDIR, SKIP, SkipTest, run_tests, unmount_under  # noqa: E402

TOOL = os.path.join(BUILDDIR, "t", "image_pull_tool")
reg = None       # open registry with the test images
basic = None     # htpasswd registry on the same storage
token = None     # token-auth registry on the same storage
liar = None
imgs = {}


def tool(root, *args, extra=()):
    cmd = [TOOL, "--root", root]
    for r in (reg, basic, token):
        if r:
            cmd += ["--insecure", r.host]
    cmd += ["--insecure", liar.host] + list(extra) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode != 3, "loop left handles open:\n" + p.stderr
    return p


def pull(root, *refs, extra=(), ok=True):
    p = tool(root, "pull", *refs, extra=extra)
    lines = [l for l in p.stdout.splitlines() if l]
    if ok:
        assert p.returncode == 0 and all(l.startswith("OK ") for l in lines), p.stdout + p.stderr
    return p, lines


def snapshot(root):
    out = []
    base = os.path.join(root, "images")
    for d, dirs, files in os.walk(base):
        for n in dirs + files:
            out.append(os.path.relpath(os.path.join(d, n), base))
    return sorted(out)


def fail_case(ref, expect, extra=()):
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        pull(root, reg.host + "/busybox:latest")
        before = snapshot(root)
        p, lines = pull(root, ref, extra=extra, ok=False)
        assert p.returncode == 1, p.stdout + p.stderr
        assert lines and lines[0].startswith("ERR "), p.stdout
        assert expect in lines[0], "%r not in %r" % (expect, lines[0])
        assert snapshot(root) == before, "store changed: %s" % (set(snapshot(root)) ^ set(before))
        return lines[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def setup():
    global reg, basic, token, liar
    reg = cricreg.Registry().start()
    imgs["busybox"] = cricreg.busybox_image()
    imgs["busybox_digest"] = reg.push_image("busybox:latest", imgs["busybox"])[1]
    imgs["other"] = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("other", "o\n").bytes(), "none")])
    reg.push_image("other:v1", imgs["other"])
    arm = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("arm", "arm\n").bytes())], arch="arm64")
    reg.push_index("multi:latest", [arm, imgs["busybox"]])
    reg.push_index("armonly:latest", [arm], oci=False)
    trunc_tar = cricreg.TarBuilder().file("big", os.urandom(200000)).bytes()
    import gzip
    gz = gzip.compress(trunc_tar)
    reg.push_image("truncated:latest", cricreg.Image([cricreg.Layer(trunc_tar, blob=gz[:len(gz) // 2])]))
    dotdot = cricreg.TarBuilder().file("ok", "x").file("../escaped", "x").bytes()
    reg.push_image("dotdot:latest", cricreg.Image([cricreg.Layer(dotdot)]))
    sym = cricreg.TarBuilder().symlink("ln", "/tmp").file("ln/escaped", "x").bytes()
    reg.push_image("symlink:latest", cricreg.Image([cricreg.Layer(sym)]))
    relsym = cricreg.TarBuilder().symlink("a/ln", "../../../escaped").bytes()
    reg.push_image("relsym:latest", cricreg.Image([cricreg.Layer(relsym)]))
    basic = cricreg.Registry(auth="htpasswd", storage=reg.storage).start()
    if shutil.which("openssl"):  # signs tokens, makes certificates
        token = cricreg.Registry(auth="token", storage=reg.storage).start()
    liar = cricreg.LyingRegistry()
    corrupt = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("c", "c" * 5000).bytes())])
    liar.add_image("corrupt:latest", corrupt)
    liar.corrupt.add(corrupt.layers[0].digest)
    drop = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("d", os.urandom(300000)).bytes())])
    liar.add_image("drop:latest", drop)
    liar.drop.add(drop.layers[0].digest)
    liar.add_image("mirrored:latest", imgs["other"])
    # two images sharing their two lower layers
    base = [cricreg.Layer(cricreg.TarBuilder().file("base", os.urandom(400000)).bytes()),
            cricreg.Layer(cricreg.TarBuilder().file("mid", os.urandom(200000)).bytes())]
    imgs["share1"] = cricreg.Image(base + [cricreg.Layer(cricreg.TarBuilder().file("one", "1").bytes())])
    imgs["share2"] = cricreg.Image(base + [cricreg.Layer(cricreg.TarBuilder().file("two", "2").bytes())])
    liar.add_image("share1:latest", imgs["share1"])
    liar.add_image("share2:latest", imgs["share2"])
    imgs["redir"] = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("r", "redirected\n").bytes())])
    liar.add_image("redir:latest", imgs["redir"])
    liar.redirect.add(imgs["redir"].layers[0].digest)
    # a manifest served under a digest it does not have, and nonsense
    imgs["fake_digest"] = "sha256:" + "0" * 64
    liar.manifests[("fake", imgs["fake_digest"])] = imgs["other"].manifest()
    liar.manifests[("nonsense", "latest")] = (b"<html>not a manifest</html>", cricreg.DOCKER_MANIFEST)
    stall = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("s", os.urandom(300000)).bytes())])
    liar.add_image("stall:latest", stall)
    liar.stall.add(stall.layers[0].digest)


def teardown():
    for r in (reg, basic, token):
        if r:
            r.stop()
    if liar:
        liar.stop()


def test_pull_multilayer_whiteouts():
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        p, lines = pull(root, reg.host + "/busybox:latest")
        f = lines[0].split()
        assert f[2] == imgs["busybox"].config_digest, lines
        dirs = f[3:]
        assert len(dirs) == 3
        # layer dirs are named by chain ID (OCI image spec)
        import hashlib
        chain = []
        for l in imgs["busybox"].layers:
            chain.append(l.diff_id if not chain else
                         "sha256:" + hashlib.sha256((chain[-1] + " " + l.diff_id).encode()).hexdigest())
        assert [os.path.basename(os.path.dirname(x)) for x in dirs] == [c[7:] for c in chain], (dirs, chain)
        st = os.lstat(os.path.join(dirs[1], "etc", "gone"))
        assert os.major(st.st_rdev) == 0 and (st.st_mode & 0o170000) == 0o020000  # whiteout char dev 0/0
        assert os.getxattr(os.path.join(dirs[1], "opq"), "trusted.overlay.opaque") == b"y"
        st = os.lstat(os.path.join(dirs[1], "etc", "owned"))
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777, st.st_nlink) == (1234, 4321, 0o640, 2)
        assert open(os.path.join(dirs[2], "z", "zstd-layer")).read() == "unpacked from zstd\n"
        assert os.readlink(os.path.join(dirs[0], "bin", "sh")) == "busybox"
        # Stacked with overlayfs the whiteouts hide the lower entries.
        mnt = os.path.join(root, "mnt")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(reversed(dirs)), mnt],
                           capture_output=True, text=True)
        if r.returncode == 0:
            try:
                assert not os.path.exists(os.path.join(mnt, "etc", "gone"))
                assert os.listdir(os.path.join(mnt, "opq")) == ["new"]
                assert os.path.exists(os.path.join(mnt, "bin", "busybox"))
                out = subprocess.run(["chroot", mnt, "/bin/sh", "-c", "cat /z/zstd-layer"], capture_output=True,
                                     text=True)
                assert out.stdout == "unpacked from zstd\n", out
            finally:
                unmount_under(mnt)
        # list shows it with tag and digest
        p = tool(root, "list")
        assert reg.host + "/busybox:latest" in p.stdout
        assert reg.host + "/busybox@" + imgs["busybox_digest"] in p.stdout
        # re-pull: same image, no new layer
        before = snapshot(root)
        p, lines2 = pull(root, reg.host + "/busybox:latest")
        assert lines2[0].split()[2] == f[2]
        assert snapshot(root) == before
        # by digest
        p, lines3 = pull(root, reg.host + "/busybox@" + imgs["busybox_digest"])
        assert lines3[0].split()[2] == f[2]
        # remove: layers go
        p = tool(root, "rm", reg.host + "/busybox:latest")
        assert p.returncode == 0, p.stdout
        assert not any(os.path.exists(d) for d in dirs)
        assert snapshot(root) == ['blobs', 'blobs/sha256', 'layers', 'records', 'tmp', 'trash'], snapshot(root)
        p = tool(root, "rm", reg.host + "/busybox:latest")
        assert p.returncode == 1
    finally:
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


def test_index_picks_platform():
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        p, lines = pull(root, reg.host + "/multi:latest")
        assert lines[0].split()[2] == imgs["busybox"].config_digest
    finally:
        shutil.rmtree(root, ignore_errors=True)
    fail_case(reg.host + "/armonly:latest", "no image for platform linux/amd64")


def test_concurrent_pulls():
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        b = reg.host + "/busybox:latest"
        p, lines = pull(root, b, b, b, reg.host + "/other:v1", reg.host + "/multi:latest", extra=["--max", "2"])
        ids = {l.split()[1]: l.split()[2] for l in lines}
        assert len(lines) == 5
        assert ids[b] == imgs["busybox"].config_digest and ids[reg.host + "/other:v1"] == imgs["other"].config_digest
        p = tool(root, "list")
        assert len(p.stdout.splitlines()) == 2, p.stdout
        assert os.listdir(os.path.join(root, "images", "tmp")) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_shared_layers_fetched_once():
    """Concurrent pulls of different images with common lower layers fetch
    each common layer once."""
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        liar.blob_gets.clear()
        p, lines = pull(root, liar.host + "/share1:latest", liar.host + "/share2:latest", extra=["--max", "1"])
        ids = sorted(l.split()[2] for l in lines)
        assert ids == sorted([imgs["share1"].config_digest, imgs["share2"].config_digest])
        for l in imgs["share1"].layers[:2]:
            assert liar.blob_gets.get(l.digest) == 1, (liar.blob_gets, [x.digest for x in imgs["share1"].layers],
                                                       [x.digest for x in imgs["share2"].layers])
        assert len(os.listdir(os.path.join(root, "images", "layers"))) == 4
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_unknown_and_bad_refs():
    fail_case(reg.host + "/nothere:latest", "not found in registry " + reg.host)
    fail_case(reg.host + "/busybox:nosuchtag", "not found")
    fail_case("127.0.0.1:1/x:latest", "after 3 attempts")
    fail_case("BAD REF", "invalid image reference")


def test_basic_auth():
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        ref = basic.host + "/busybox:latest"
        p, lines = pull(root, ref, extra=["--creds", "tester:s3cret"])
        assert lines[0].split()[2] == imgs["busybox"].config_digest
    finally:
        shutil.rmtree(root, ignore_errors=True)
    msg = fail_case(basic.host + "/other:v1", "wrong credentials", extra=["--creds", "tester:WRONGPASS"])
    assert "WRONGPASS" not in msg
    fail_case(basic.host + "/other:v1", "authentication required")
    # credentials from an auth file (docker config.json)
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        af = os.path.join(root, "auth.json")
        import base64
        import json
        with open(af, "w") as f:
            json.dump({"auths": {basic.host: {"auth": base64.b64encode(b"tester:s3cret").decode()}}}, f)
        p, lines = pull(root, basic.host + "/other:v1", extra=["--auth-file", af])
        for d, _, files in os.walk(os.path.join(root, "images")):
            for n in files:
                assert b"s3cret" not in open(os.path.join(d, n), "rb").read()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_token_auth():
    if token is None:
        raise SkipTest("openssl CLI missing")
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        n = len(token.token.requests)
        p, lines = pull(root, token.host + "/busybox:latest", extra=["--creds", "tester:s3cret"])
        assert lines[0].split()[2] == imgs["busybox"].config_digest
        assert len(token.token.requests) > n
        assert "scope=repository%3Abusybox%3Apull" in token.token.requests[-1], token.token.requests
    finally:
        shutil.rmtree(root, ignore_errors=True)
    msg = fail_case(token.host + "/other:v1", "rejected the credentials", extra=["--creds", "tester:nope-pw"])
    assert "nope-pw" not in msg
    fail_case(token.host + "/other:v1", "rejected the anonymous request")
    # identity token: OAuth2 refresh-token grant
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        p, lines = pull(root, token.host + "/other:v1", extra=["--identity-token", "good-refresh-token"])
        assert lines[0].split()[2] == imgs["other"].config_digest
        assert token.token.requests[-1].startswith("POST "), token.token.requests[-1]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    msg = fail_case(token.host + "/other:v1", "rejected the credentials", extra=["--identity-token", "bad-rt-x"])
    assert "bad-rt-x" not in msg


def test_lying_registry():
    fail_case(liar.host + "/corrupt:latest", "does not match")
    fail_case(liar.host + "/drop:latest", "layer blob")
    fail_case(liar.host + "/fake@" + imgs["fake_digest"], "not the requested " + imgs["fake_digest"])
    fail_case(liar.host + "/nonsense:latest", "invalid JSON")
    # no byte for images.pull_timeout seconds: retried, then a clear error
    fail_case(liar.host + "/stall:latest", "Operation too slow", extra=["--timeout", "1"])


def test_redirect_followed():
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        p, lines = pull(root, liar.host + "/redir:latest")
        assert lines[0].split()[2] == imgs["redir"].config_digest
        assert open(os.path.join(lines[0].split()[3], "r")).read() == "redirected\n"
        assert liar.storage_hits and liar.storage_hits[-1] == (imgs["redir"].layers[0].digest, None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_bad_layers():
    fail_case(reg.host + "/truncated:latest", "layer sha256:")
    fail_case(reg.host + "/dotdot:latest", "'../escaped': the path contains '..'")
    fail_case(reg.host + "/symlink:latest", "ln/escaped")
    fail_case(reg.host + "/relsym:latest", "leaves the layer")
    assert not os.path.exists("/escaped") and not os.path.exists("/tmp/escaped")


def test_mirrors():
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        # The mirror lacks busybox (falls back to upstream) but has "other" under mirrored.
        p, lines = pull(root, reg.host + "/busybox:latest", extra=["--mirror", reg.host + "=http://" + liar.host])
        assert lines[0].split()[2] == imgs["busybox"].config_digest
        p, lines = pull(root, "example.invalid/mirrored:latest",
                        extra=["--mirror", "example.invalid=http://" + liar.host])
        assert lines[0].split()[2] == imgs["other"].config_digest
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_tls_certs_dir():
    """HTTPS with a private CA and a client certificate from certs.d."""
    if not shutil.which("openssl"):
        raise SkipTest("openssl CLI missing")
    tls = cricreg.Registry(storage=reg.storage, tls=True).start()
    root = tempfile.mkdtemp(prefix="cric-pt-")
    try:
        certs = os.path.join(root, "certs.d")
        os.makedirs(os.path.join(certs, tls.host))
        for src, dst in (("ca.crt", "ca.crt"), ("client.cert", "client.cert"), ("client.key", "client.key")):
            shutil.copy(tls.certs[src], os.path.join(certs, tls.host, dst))
        ref = tls.host + "/other:v1"
        p = subprocess.run([TOOL, "--root", root, "--certs-dir", certs, "pull", ref], capture_output=True, text=True)
        assert p.returncode == 0 and imgs["other"].config_digest in p.stdout, p.stdout + p.stderr
        # without the CA: a clear certificate error, nothing stored
        p = subprocess.run([TOOL, "--root", root + "/2", "pull", ref], capture_output=True, text=True)
        assert p.returncode == 1 and "certificate" in p.stdout.lower(), p.stdout
        # without the client certificate the registry refuses the handshake
        os.unlink(os.path.join(certs, tls.host, "client.cert"))
        p = subprocess.run([TOOL, "--root", root + "/3", "--certs-dir", certs, "pull", ref], capture_output=True,
                           text=True)
        assert p.returncode == 1, p.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
        tls.stop()


def main():
    if not cricreg.have_registry() or not os.access(TOOL, os.X_OK):
        print("SKIP: docker-registry or image_pull_tool missing")
        sys.exit(SKIP)
    if os.geteuid() != 0:
        print("SKIP: needs root (owners, whiteouts)")
        sys.exit(SKIP)
    try:
        setup()
        run_tests([test_pull_multilayer_whiteouts, test_index_picks_platform, test_concurrent_pulls,
                   test_shared_layers_fetched_once,
                   test_unknown_and_bad_refs, test_basic_auth, test_token_auth, test_lying_registry, test_redirect_followed,
                   test_bad_layers, test_mirrors, test_tls_certs_dir])
    finally:
        teardown()


if __name__ == "__main__":
    main()
