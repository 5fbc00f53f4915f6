/* Fuzz targets for image input: manifest / index / image-config JSON
 * (FUZZ_MANIFEST) and tar layers (FUZZ_TAR, unpacked into a temp dir).
 * Built with libFuzzer under --with-fuzzer; always built as replay programs
 * that run every file of the committed corpus (t/fuzz/manifest/, t/fuzz/tar/)
 * or the files/dirs given as arguments. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/manifest.h"
#include "image/store.h"
#include "image/unpack.h"
#include "fuzz_replay.h"
#include "util/fs.h"

#ifdef FUZZ_MANIFEST
#define NAME "fuzz_image_manifest"
#define CORPUS "t/fuzz/manifest"
#else
#define NAME "fuzz_image_tar"
#define CORPUS "t/fuzz/tar"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#ifdef FUZZ_MANIFEST
    struct cric_manifest *m = NULL;
    cric_error *err = NULL;
    if (cric_manifest_parse((const char *)data, size, NULL, &m, &err) == 0) {
        if (m->kind == CRIC_MANIFEST_INDEX)
            cric_manifest_choose(m, "linux", "amd64", NULL, NULL);
        cric_manifest_free(m);
    } else if (!err || !err->msg[0]) {
        abort(); /* every failure names its cause */
    }
    cric_error_clear(&err);
    struct cric_image_config c;
    char **ids = NULL;
    if (cric_image_config_parse((const char *)data, size, &c, &ids, &err) == 0) {
        cric_image_config_clear(&c);
        cric_strv_free(ids);
    }
    cric_error_clear(&err);
#else
    char dir[] = "/tmp/cric-fuzz-tar-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char blob[128], dest[128];
    snprintf(blob, sizeof(blob), "%s/blob", dir);
    snprintf(dest, sizeof(dest), "%s/layer", dir);
    FILE *f = fopen(blob, "wb");
    if (!f || fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    uint64_t bytes;
    cric_error *err = NULL;
    if (cric_layer_unpack(blob, dest, NULL, &bytes, &err) < 0 && (!err || !err->msg[0]))
        abort();
    cric_error_free(err);
    /* Nothing may appear next to the layer dir but the blob. */
    char p[160];
    snprintf(p, sizeof(p), "%s/escaped", dir);
    if (access(p, F_OK) == 0 || access("/tmp/escaped", F_OK) == 0)
        abort();
    cric_rm_rf(dir, NULL);
#endif
    return 0;
}

#ifndef CRIC_LIBFUZZER
static void run_file(char *buf, size_t len)
{
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
}

int main(int argc, char **argv)
{
    long n = fuzz_replay(NAME, CORPUS, 16 << 20, argc, argv, run_file);
    if (n == 0) {
        fprintf(stderr, NAME ": empty corpus\n");
        return 1;
    }
    printf(NAME ": %ld inputs replayed\n", n);
    return n < 0 ? 1 : 0;
}
#endif
