#include "config.h"
#include "image/ref.h"
#include "util/cleanup.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAX 4096
#define NAME_MAX_TOTAL 255

bool cric_digest_valid(const char *s)
{
    if (!s || strncmp(s, "sha256:", 7) != 0)
        return false;
    s += 7;
    size_t n = 0;
    for (; s[n]; n++)
        if (!isdigit((unsigned char)s[n]) && !(s[n] >= 'a' && s[n] <= 'f'))
            return false;
    return n == 64;
}

static bool alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t n)
{
    if (n == 0 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 0; i < n;) {
        if (alnum_lower(s[i])) {
            i++;
            continue;
        }
        size_t j = i;
        if (s[i] == '.' || s[i] == '_') {
            j++;
            if (s[i] == '_' && j < n && s[j] == '_')
                j++;
        } else if (s[i] == '-') {
            while (j < n && s[j] == '-')
                j++;
        } else {
            return false;
        }
        if (j >= n || !alnum_lower(s[j]))
            return false;
        i = j;
    }
    return true;
}

/* host[:port], host = dns labels or an [ipv6] literal. */
static bool domain_valid(const char *s, size_t n)
{
    if (n == 0)
        return false;
    size_t i = 0;
    if (s[0] == '[') {
        while (i < n && s[i] != ']')
            i++;
        if (i == n)
            return false;
        i++;
    } else {
        for (; i < n && s[i] != ':'; i++) {
            char c = s[i];
            if (!isalnum((unsigned char)c) && c != '-' && c != '.')
                return false;
        }
        if (i == 0 || s[0] == '-' || s[0] == '.' || s[i - 1] == '.' || s[i - 1] == '-')
            return false;
    }
    if (i < n) {
        if (s[i] != ':' || i + 1 == n)
            return false;
        for (i++; i < n; i++)
            if (!isdigit((unsigned char)s[i]))
                return false;
    }
    return true;
}

static bool tag_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    if (!isalnum((unsigned char)s[0]) && s[0] != '_')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

void cric_image_ref_clear(struct cric_image_ref *r)
{
    free(r->domain);
    free(r->path);
    free(r->tag);
    free(r->digest);
    memset(r, 0, sizeof(*r));
}

int cric_image_ref_parse(const char *s, struct cric_image_ref *out, cric_error **err)
{
    if (!s || !*s)
        return cric_error_new(err, -EINVAL, "invalid image reference '': empty");
    if (strlen(s) > REF_MAX)
        return cric_error_new(err, -EINVAL, "invalid image reference: longer than %d bytes", REF_MAX);
    _cleanup_free_ char *buf = strdup(s);
    if (!buf)
        return -ENOMEM;
    struct cric_image_ref r = {0};
    char *digest = strchr(buf, '@');
    if (digest) {
        *digest++ = '\0';
        if (!cric_digest_valid(digest))
            return cric_error_new(err, -EINVAL, "invalid image reference '%s': bad digest '%s'", s, digest);
    }
    /* The tag is after the last ':' that follows the last '/'. */
    char *slash = strrchr(buf, '/');
    char *colon = strrchr(slash ? slash : buf, ':');
    char *tag = NULL;
    if (colon) {
        *colon = '\0';
        tag = colon + 1;
        if (!tag_valid(tag))
            return cric_error_new(err, -EINVAL, "invalid image reference '%s': bad tag '%s'", s, tag);
    }
    char *name = buf;
    const char *domain = "docker.io";
    char *first_slash = strchr(name, '/');
    char *rest = name;
    if (first_slash) {
        size_t dn = (size_t)(first_slash - name);
        bool is_domain = memchr(name, '.', dn) || memchr(name, ':', dn) ||
                         (dn == 9 && strncmp(name, "localhost", 9) == 0);
        for (size_t i = 0; i < dn && !is_domain; i++)
            if (isupper((unsigned char)name[i]))
                is_domain = true;
        if (is_domain) {
            if (!domain_valid(name, dn))
                return cric_error_new(err, -EINVAL, "invalid image reference '%s': bad registry host", s);
            *first_slash = '\0';
            domain = name;
            rest = first_slash + 1;
        }
    }
    if (strcmp(domain, "index.docker.io") == 0)
        domain = "docker.io";
    if (strlen(rest) > NAME_MAX_TOTAL)
        return cric_error_new(err, -EINVAL, "invalid image reference '%s': name too long", s);
    for (const char *p = rest;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!component_valid(p, n))
            return cric_error_new(err, -EINVAL,
                                  "invalid image reference '%s': repository name must be lowercase "
                                  "[a-z0-9] separated by '.', '_', '__' or '-'",
                                  s);
        if (!e)
            break;
        p = e + 1;
    }
    r.domain = strdup(domain);
    if (strcmp(domain, "docker.io") == 0 && !strchr(rest, '/')) {
        if (asprintf(&r.path, "library/%s", rest) < 0)
            r.path = NULL;
    } else {
        r.path = strdup(rest);
    }
    if (tag)
        r.tag = strdup(tag);
    else if (!digest)
        r.tag = strdup("latest");
    if (digest)
        r.digest = strdup(digest);
    if (!r.domain || !r.path || ((tag || !digest) && !r.tag) || (digest && !r.digest)) {
        cric_image_ref_clear(&r);
        return cric_error_new(err, -ENOMEM, "parse image reference: out of memory");
    }
    *out = r;
    return 0;
}

char *cric_image_ref_repo(const struct cric_image_ref *r)
{
    char *s = NULL;
    return asprintf(&s, "%s/%s", r->domain, r->path) < 0 ? NULL : s;
}

char *cric_image_ref_tagged(const struct cric_image_ref *r)
{
    char *s = NULL;
    if (!r->tag)
        return NULL;
    return asprintf(&s, "%s/%s:%s", r->domain, r->path, r->tag) < 0 ? NULL : s;
}

char *cric_image_ref_string(const struct cric_image_ref *r)
{
    char *s = NULL;
    int n = asprintf(&s, "%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
                     r->digest ? "@" : "", r->digest ? r->digest : "");
    return n < 0 ? NULL : s;
}
