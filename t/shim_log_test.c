/* Unit tests of cric-shim's CRI log writer (shim/logw.c compiled in). */
#include <check.h>
#include "check_run.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim/cshim.h"

struct rec {
    char ts[31];
    char stream[7];
    char tag;
    char *data; /* points into the file buffer */
    size_t len;
};

static char dir[64];
static char path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/cric-logw-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/c.log", dir);
}

static void teardown(void)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/c.log", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/c.log.1", dir);
    unlink(p);
    rmdir(dir);
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Parses every record; checks the fixed-width fields while at it. */
static size_t parse(char *buf, size_t len, struct rec *out, size_t max)
{
    size_t n = 0;
    char *p = buf, *end = buf + len;
    while (p < end) {
        ck_assert_uint_lt(n, max);
        char *nl = memchr(p, '\n', (size_t)(end - p));
        ck_assert_ptr_nonnull(nl);
        struct rec *r = &out[n++];
        ck_assert_int_ge(nl - p, 30 + 1 + 6 + 3);
        memcpy(r->ts, p, 30);
        r->ts[30] = '\0';
        ck_assert_int_eq(p[10], 'T');
        ck_assert_int_eq(p[19], '.');
        ck_assert_int_eq(p[29], 'Z');
        ck_assert_int_eq(p[30], ' ');
        memcpy(r->stream, p + 31, 6);
        r->stream[6] = '\0';
        ck_assert_int_eq(p[37], ' ');
        r->tag = p[38];
        ck_assert(r->tag == 'P' || r->tag == 'F');
        ck_assert_int_eq(p[39], ' ');
        r->data = p + 40;
        r->len = (size_t)(nl - (p + 40));
        p = nl + 1;
    }
    return n;
}

static void feed(struct cshim_logw *w, struct cshim_line *l, const char *data, size_t len)
{
    while (len > 0) {
        size_t k = sizeof(l->buf) - l->len;
        if (k > len)
            k = len;
        memcpy(l->buf + l->len, data, k);
        l->len += k;
        data += k;
        len -= k;
        cshim_logw_lines(w, l, false);
    }
}

START_TEST(timestamp_format)
{
    char ts[32];
    cshim_logw_timestamp(0, ts);
    ck_assert_str_eq(ts, "1970-01-01T00:00:00.000000000Z");
    cshim_logw_timestamp(1234567890123456789LL, ts);
    ck_assert_str_eq(ts, "2009-02-13T23:31:30.123456789Z");
    cshim_logw_timestamp(1234567890000000005LL, ts);
    ck_assert_str_eq(ts, "2009-02-13T23:31:30.000000005Z");
}
END_TEST

START_TEST(short_lines_and_final)
{
    struct cshim_logw w;
    static struct cshim_line l;
    cshim_logw_init(&w);
    ck_assert_int_eq(cshim_logw_open(&w, path, 0), 0);
    l.stream = 1;
    l.len = 0;
    feed(&w, &l, "a\nbb\ncc", 7);
    ck_assert_uint_eq(l.len, 2); /* "cc" waits for its newline */
    feed(&w, &l, "c\n\nlast", 7);
    cshim_logw_lines(&w, &l, true);
    ck_assert_uint_eq(l.len, 0);
    cshim_logw_close(&w);
    size_t len;
    char *buf = slurp(path, &len);
    struct rec r[8];
    size_t n = parse(buf, len, r, 8);
    ck_assert_uint_eq(n, 5);
    const char *want[] = {"a", "bb", "ccc", "", "last"};
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(r[i].stream, "stdout");
        ck_assert_int_eq(r[i].tag, 'F');
        ck_assert_uint_eq(r[i].len, strlen(want[i]));
        ck_assert(memcmp(r[i].data, want[i], r[i].len) == 0);
    }
    free(buf);
}
END_TEST

START_TEST(long_line_partial_records)
{
    struct cshim_logw w;
    static struct cshim_line l;
    cshim_logw_init(&w);
    ck_assert_int_eq(cshim_logw_open(&w, path, 0), 0);
    l.stream = 2;
    l.len = 0;
    size_t big = 3 * CSHIM_LINE_MAX + 123;
    char *line = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        line[i] = (char)('a' + i % 26);
    line[big] = '\n';
    feed(&w, &l, line, big + 1);
    feed(&w, &l, "next\n", 5);
    cshim_logw_close(&w);
    size_t len;
    char *buf = slurp(path, &len);
    struct rec r[16];
    size_t n = parse(buf, len, r, 16);
    ck_assert_uint_eq(n, 5);
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        ck_assert_str_eq(r[i].stream, "stderr");
        ck_assert_int_eq(r[i].tag, i < 3 ? 'P' : 'F');
        ck_assert(memcmp(r[i].data, line + off, r[i].len) == 0);
        off += r[i].len;
    }
    ck_assert_uint_eq(off, big);
    ck_assert_int_eq(r[4].tag, 'F');
    ck_assert_uint_eq(r[4].len, 4);
    free(buf);
    free(line);
}
END_TEST

START_TEST(binary_bytes_exact)
{
    struct cshim_logw w;
    static struct cshim_line l;
    cshim_logw_init(&w);
    ck_assert_int_eq(cshim_logw_open(&w, path, 0), 0);
    l.stream = 1;
    l.len = 0;
    char data[255];
    size_t k = 0;
    for (int c = 0; c < 256; c++)
        if (c != '\n')
            data[k++] = (char)c;
    feed(&w, &l, data, k);
    feed(&w, &l, "\n", 1);
    cshim_logw_close(&w);
    size_t len;
    char *buf = slurp(path, &len);
    struct rec r[4];
    ck_assert_uint_eq(parse(buf, len, r, 4), 1);
    ck_assert_uint_eq(r[0].len, k);
    ck_assert(memcmp(r[0].data, data, k) == 0);
    free(buf);
}
END_TEST

START_TEST(size_cap_truncates)
{
    struct cshim_logw w;
    static struct cshim_line l;
    cshim_logw_init(&w);
    ck_assert_int_eq(cshim_logw_open(&w, path, 500), 0);
    l.stream = 1;
    l.len = 0;
    for (int i = 0; i < 100; i++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "line %03d\n", i);
        feed(&w, &l, line, (size_t)n);
    }
    cshim_logw_close(&w);
    size_t len;
    char *buf = slurp(path, &len);
    ck_assert_uint_le(len, 500);
    struct rec r[16];
    size_t n = parse(buf, len, r, 16);
    ck_assert_uint_gt(n, 0);
    ck_assert(memcmp(r[n - 1].data, "line 099", 8) == 0); /* the newest survive */
    free(buf);
}
END_TEST

START_TEST(reopen_after_rename)
{
    struct cshim_logw w;
    static struct cshim_line l;
    cshim_logw_init(&w);
    ck_assert_int_eq(cshim_logw_open(&w, path, 0), 0);
    l.stream = 1;
    l.len = 0;
    feed(&w, &l, "before\n", 7);
    char old[160];
    snprintf(old, sizeof(old), "%s.1", path);
    ck_assert_int_eq(rename(path, old), 0);
    feed(&w, &l, "still old\n", 10);
    ck_assert_int_eq(cshim_logw_reopen(&w), 0);
    feed(&w, &l, "after\n", 6);
    cshim_logw_close(&w);
    size_t len;
    char *buf = slurp(path, &len);
    struct rec r[4];
    ck_assert_uint_eq(parse(buf, len, r, 4), 1);
    ck_assert(r[0].len == 5 && memcmp(r[0].data, "after", 5) == 0);
    free(buf);
    buf = slurp(old, &len);
    ck_assert_uint_eq(parse(buf, len, r, 4), 2);
    free(buf);
}
END_TEST

START_TEST(slow_line_becomes_partial)
{
    struct cshim_logw w;
    static struct cshim_line l;
    cshim_logw_init(&w);
    ck_assert_int_eq(cshim_logw_open(&w, path, 0), 0);
    l.stream = 1;
    l.len = 0;
    l.pending_since = 0;
    feed(&w, &l, "progress 10%", 12);
    ck_assert(l.pending_since > 0);
    cshim_logw_partial(&w, &l);
    ck_assert_uint_eq(l.len, 0);
    ck_assert(l.pending_since == 0);
    feed(&w, &l, " done\n", 6);
    cshim_logw_close(&w);
    size_t len;
    char *buf = slurp(path, &len);
    struct rec r[4];
    ck_assert_uint_eq(parse(buf, len, r, 4), 2);
    ck_assert_int_eq(r[0].tag, 'P');
    ck_assert(r[0].len == 12 && memcmp(r[0].data, "progress 10%", 12) == 0);
    ck_assert_int_eq(r[1].tag, 'F');
    ck_assert(r[1].len == 5 && memcmp(r[1].data, " done", 5) == 0);
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shim_log");
    TCase *tc = tcase_create("logw");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, timestamp_format);
    tcase_add_test(tc, short_lines_and_final);
    tcase_add_test(tc, long_line_partial_records);
    tcase_add_test(tc, binary_bytes_exact);
    tcase_add_test(tc, size_cap_truncates);
    tcase_add_test(tc, reopen_after_rename);
    tcase_add_test(tc, slow_line_becomes_partial);
    suite_add_tcase(s, tc);
    return cric_check_run(s, false);
}
