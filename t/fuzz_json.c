/* Fuzz target for the JSON readers people feed cricd and cricctl: the config
 * file (cric_config_load_string) and protobuf JSON (cric_pbjson_decode of pod
 * and container configs, then encode and decode again, which must succeed).
 * With -DCRIC_LIBFUZZER it is a libFuzzer target; otherwise main() replays
 * the corpus (t/fuzz/json/ or the paths given) plus deterministic mutations
 * of every file (truncations, byte flips), so `make check` exercises it. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.pb-c.h"
#include "config/config.h"
#include "fuzz_replay.h"
#include "util/pbjson.h"

static void pb_round_trip(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL;
    cric_error *err = NULL;
    if (cric_pbjson_decode(d, (const char *)data, size, &m, &err) < 0) {
        if (!err || !err->msg)
            abort(); /* every failure must say why */
        cric_error_free(err);
        return;
    }
    char *json = NULL;
    if (cric_pbjson_encode(m, false, &json, NULL) < 0)
        abort();
    ProtobufCMessage *back = NULL;
    if (cric_pbjson_decode(d, json, strlen(json), &back, &err) < 0) {
        fprintf(stderr, "re-decode of our own output failed: %s\n%s\n", err->msg, json);
        abort();
    }
    protobuf_c_message_free_unpacked(back, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct cric_config cfg;
    if (cric_config_defaults(&cfg, NULL) < 0)
        abort();
    cric_error *err = NULL;
    if (cric_config_load_string(&cfg, "fuzz.conf", text, &err) < 0) {
        if (!err || !strstr(err->msg, "fuzz.conf"))
            abort(); /* config errors always name the file */
        cric_error_free(err);
    } else {
        char *json = NULL;
        if (cric_config_to_json(&cfg, &json, NULL) < 0)
            abort();
        free(json);
    }
    cric_config_free(&cfg);
    pb_round_trip(&runtime__v1__pod_sandbox_config__descriptor, data, size);
    pb_round_trip(&runtime__v1__container_config__descriptor, data, size);
    free(text);
    return 0;
}

#ifndef CRIC_LIBFUZZER
static unsigned runs;

static void replay_buf(char *buf, size_t len)
{
    LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
    runs++;
    /* Deterministic mutations: truncations and byte flips (xorshift). */
    for (size_t cut = 0; cut < len; cut += 1 + len / 32) {
        LLVMFuzzerTestOneInput((const uint8_t *)buf, cut);
        runs++;
    }
    char *m = malloc(len + 1);
    if (!m || !len) {
        free(m);
        return;
    }
    uint32_t x = 2463534242u ^ (uint32_t)len;
    static const char pick[] = "{}[]\",:0-9e.\\/ \nnulltruefalse\x01\xff*";
    for (int i = 0; i < 1000; i++) {
        memcpy(m, buf, len);
        for (int k = 0; k < 1 + i % 4; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            m[x % len] = pick[(x >> 8) % (sizeof(pick) - 1)];
        }
        LLVMFuzzerTestOneInput((const uint8_t *)m, len);
        runs++;
    }
    free(m);
}

int main(int argc, char **argv)
{
    long n = fuzz_replay("fuzz_json", "t/fuzz/json", 1 << 20, argc, argv, replay_buf);
    printf("fuzz_json: %u inputs\n", runs);
    return n < 0 ? 1 : 0;
}
#endif
