/* Unit tests of src/grpc/framing.c: message prefix, percent-encoding,
 * grpc-timeout values, status mapping. */
#include "config.h"

#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/framing.h"

static const uint8_t msg3[] = { 0, 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'z' };

START_TEST(prefix_whole)
{
    struct cric_grpc_reader r = { .max = 100 };
    size_t used, len;
    ck_assert_int_eq(cric_grpc_reader_feed(&r, msg3, sizeof(msg3), &used), 1);
    ck_assert_uint_eq(used, 8);
    uint8_t *b = cric_grpc_reader_take(&r, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(b, "abc", 3);
    free(b);
    /* an empty message completes on its prefix alone */
    ck_assert_int_eq(cric_grpc_reader_feed(&r, msg3 + 8, sizeof(msg3) - 8, &used), 1);
    ck_assert_uint_eq(used, 5);
    b = cric_grpc_reader_take(&r, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(cric_grpc_reader_feed(&r, msg3 + 13, sizeof(msg3) - 13, &used), 1);
    b = cric_grpc_reader_take(&r, &len);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(b[0], 'z');
    free(b);
    ck_assert(!cric_grpc_reader_partial(&r));
}
END_TEST

/* Every split of the stream into two and into single bytes gives the same messages. */
START_TEST(prefix_split)
{
    for (size_t cut = 0; cut <= sizeof(msg3); cut++) {
        struct cric_grpc_reader r = { .max = 100 };
        const uint8_t *p = msg3;
        size_t left = sizeof(msg3), got = 0, total = 0;
        size_t chunk = cut ? cut : 1;
        while (left > 0) {
            size_t n = left < chunk ? left : chunk, used;
            int rc = cric_grpc_reader_feed(&r, p, n, &used);
            ck_assert_int_ge(rc, 0);
            p += used;
            left -= used;
            if (rc == 1) {
                size_t len;
                free(cric_grpc_reader_take(&r, &len));
                total += len;
                got++;
            } else {
                ck_assert_uint_eq(used, n);
            }
        }
        ck_assert_uint_eq(got, 3);
        ck_assert_uint_eq(total, 4);
        cric_grpc_reader_free(&r);
    }
}
END_TEST

START_TEST(prefix_errors)
{
    size_t used;
    struct cric_grpc_reader r = { .max = 2 };
    ck_assert_int_eq(cric_grpc_reader_feed(&r, msg3, 5, &used), -EMSGSIZE);
    ck_assert_uint_eq(cric_grpc_reader_announced(&r), 3);
    cric_grpc_reader_free(&r);
    struct cric_grpc_reader r2 = { .max = 100 };
    const uint8_t comp[] = { 1, 0, 0, 0, 1, 'x' };
    ck_assert_int_eq(cric_grpc_reader_feed(&r2, comp, sizeof(comp), &used), -ENOTSUP);
    cric_grpc_reader_free(&r2);
    struct cric_grpc_reader r3 = { .max = 100 };
    const uint8_t bad[] = { 7, 0, 0, 0, 1, 'x' };
    ck_assert_int_eq(cric_grpc_reader_feed(&r3, bad, sizeof(bad), &used), -EPROTO);
    cric_grpc_reader_free(&r3);
    /* 4 GiB - 1 announced: refused by max before any allocation */
    struct cric_grpc_reader r4 = { .max = 16 << 20 };
    const uint8_t huge[] = { 0, 0xff, 0xff, 0xff, 0xff };
    ck_assert_int_eq(cric_grpc_reader_feed(&r4, huge, sizeof(huge), &used), -EMSGSIZE);
    cric_grpc_reader_free(&r4);
    /* a partial message is reported and freed */
    struct cric_grpc_reader r5 = { .max = 100 };
    ck_assert_int_eq(cric_grpc_reader_feed(&r5, msg3, 6, &used), 0);
    ck_assert(cric_grpc_reader_partial(&r5));
    cric_grpc_reader_free(&r5);
}
END_TEST

static void roundtrip(const char *s)
{
    char *e = cric_grpc_percent_encode(s);
    ck_assert_ptr_nonnull(e);
    for (const unsigned char *p = (const unsigned char *)e; *p; p++)
        ck_assert(*p >= 0x20 && *p <= 0x7e);
    char *d = cric_grpc_percent_decode(e, strlen(e));
    ck_assert_str_eq(d, s);
    free(e);
    free(d);
}

START_TEST(percent)
{
    char *e = cric_grpc_percent_encode("a b%c\n\xc3\xa9");
    ck_assert_str_eq(e, "a b%25c%0A%C3%A9");
    free(e);
    roundtrip("");
    roundtrip("plain text: not found");
    roundtrip("100% sure");
    roundtrip("\x01\x7f\xff tab\t \"q\" ~");
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = 0;
    roundtrip(all);
    /* invalid escapes are kept as they are */
    const char *bad[][2] = {
        { "%", "%" }, { "%4", "%4" }, { "%zz", "%zz" }, { "a%g1b", "a%g1b" }, { "%%41", "%A" }, { "%4a", "J" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *d = cric_grpc_percent_decode(bad[i][0], strlen(bad[i][0]));
        ck_assert_str_eq(d, bad[i][1]);
        free(d);
    }
    /* decoding honours the length, not a NUL */
    char *d = cric_grpc_percent_decode("ab%41cd", 5);
    ck_assert_str_eq(d, "abA");
    free(d);
}
END_TEST

static uint64_t tparse(const char *s)
{
    uint64_t ms = 12345;
    ck_assert_int_eq(cric_grpc_timeout_parse(s, strlen(s), &ms), 0);
    return ms;
}

START_TEST(timeout)
{
    ck_assert_uint_eq(tparse("1H"), 3600000);
    ck_assert_uint_eq(tparse("2M"), 120000);
    ck_assert_uint_eq(tparse("3S"), 3000);
    ck_assert_uint_eq(tparse("250m"), 250);
    ck_assert_uint_eq(tparse("1500u"), 2);
    ck_assert_uint_eq(tparse("1000u"), 1);
    ck_assert_uint_eq(tparse("1n"), 1);
    ck_assert_uint_eq(tparse("0m"), 0);
    ck_assert_uint_eq(tparse("99999999H"), 99999999ULL * 3600000);
    ck_assert_uint_eq(tparse("00000001S"), 1000);
    const char *bad[] = { "", "S", "1", "1x", "1s", "-1S", "1 S", "123456789S", "1.5S", "S1", "1SS", "+1S" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 7;
        ck_assert_msg(cric_grpc_timeout_parse(bad[i], strlen(bad[i]), &ms) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_uint_eq(ms, 7);
    }
    /* formatting round-trips (rounding up) and fits 8 digits */
    const uint64_t vals[] = { 0, 1, 999, 99999999, 100000000, 123456789012ULL, UINT64_MAX / 2, UINT64_MAX };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char buf[32];
        cric_grpc_timeout_format(vals[i], buf, sizeof(buf));
        ck_assert_uint_le(strlen(buf), 9);
        uint64_t back = tparse(buf);
        if (vals[i] < 99999999ULL * 3600000)
            ck_assert_uint_ge(back, vals[i]);
    }
}
END_TEST

START_TEST(status)
{
    ck_assert_int_eq(cric_grpc_status_from_errno(-ENOENT), GRPC_NOT_FOUND);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EEXIST), GRPC_ALREADY_EXISTS);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EINVAL), GRPC_INVALID_ARGUMENT);
    ck_assert_int_eq(cric_grpc_status_from_errno(-ETIMEDOUT), GRPC_DEADLINE_EXCEEDED);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EACCES), GRPC_PERMISSION_DENIED);
    ck_assert_int_eq(cric_grpc_status_from_errno(-ENOSPC), GRPC_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EOPNOTSUPP), GRPC_UNIMPLEMENTED);
    ck_assert_int_eq(cric_grpc_status_from_errno(-ECANCELED), GRPC_CANCELLED);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EAGAIN), GRPC_UNAVAILABLE);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EBUSY), GRPC_FAILED_PRECONDITION);
    ck_assert_int_eq(cric_grpc_status_from_errno(-EXDEV), GRPC_UNKNOWN);
    ck_assert_str_eq(cric_grpc_status_name(GRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
    ck_assert_str_eq(cric_grpc_status_name(99), "UNKNOWN_STATUS");
    int st = -1;
    ck_assert_int_eq(cric_grpc_status_parse("12", 2, &st), 0);
    ck_assert_int_eq(st, 12);
    ck_assert_int_eq(cric_grpc_status_parse("1a", 2, &st), -EINVAL);
    ck_assert_int_eq(cric_grpc_status_parse("", 0, &st), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("grpc_framing");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, prefix_whole);
    tcase_add_test(tc, prefix_split);
    tcase_add_test(tc, prefix_errors);
    tcase_add_test(tc, percent);
    tcase_add_test(tc, timeout);
    tcase_add_test(tc, status);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
