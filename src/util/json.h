/* A small JSON document tree on yajl that remembers the line of every value,
 * so that readers of config files and request files can say where a bad key
 * is.  Comments are accepted when asked for (cricd.conf allows them). */
#ifndef CRIC_UTIL_JSON_H
#define CRIC_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

enum cric_json_type {
    CRIC_JSON_NULL,
    CRIC_JSON_BOOL,
    CRIC_JSON_NUMBER,
    CRIC_JSON_STRING,
    CRIC_JSON_OBJECT,
    CRIC_JSON_ARRAY,
};

typedef struct cric_json {
    enum cric_json_type type;
    unsigned line;            /* 1-based line where the value starts */
    bool boolean;             /* CRIC_JSON_BOOL */
    char *str;                /* CRIC_JSON_STRING value, CRIC_JSON_NUMBER text */
    size_t len;               /* CRIC_JSON_OBJECT / ARRAY: number of items */
    char **keys;              /* CRIC_JSON_OBJECT: key of each item */
    unsigned *key_lines;      /* CRIC_JSON_OBJECT: line of each key */
    struct cric_json **items; /* children */
} cric_json;

/** Documents nest at most this deep (bounds the recursion of every walker). */
#define CRIC_JSON_MAX_DEPTH 64

/** Parses text (len bytes) into a tree the caller frees with cric_json_free().
 * Errors say "line N: <what>". */
int cric_json_parse(const char *text, size_t len, bool allow_comments, cric_json **out, cric_error **err);
void cric_json_free(cric_json *j);
/** The value of key in an object, or NULL. */
const cric_json *cric_json_get(const cric_json *obj, const char *key);
/** Writes the tree into an open yajl generator (yajl_gen, passed as void *
 * so this header needs no yajl).  Returns 0 or -EINVAL. */
int cric_json_gen(void *yajl_gen, const cric_json *j);
/** Rewrites, in place, the empty containers yajl's beautifier prints over
 * several lines ("[\n\n  ]") as "[]" and "{}". */
void cric_json_tidy(char *s);
/** "string", "number", ... for error messages. */
const char *cric_json_type_name(enum cric_json_type t);

#endif
