/* Small yajl helpers shared by the CNI, sandbox and image code. */
#ifndef CRIC_UTIL_YJ_H
#define CRIC_UTIL_YJ_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/** Re-emits a parsed value into g; returns 0 or -EINVAL. */
int cric_yj_gen_value(yajl_gen g, yajl_val v);
/** Emits a C string (NULL emits null). */
int cric_yj_gen_str(yajl_gen g, const char *s);
/** Object members "k": v.  A NULL string is emitted as null. */
void cric_yj_kv_str(yajl_gen g, const char *k, const char *v);
void cric_yj_kv_int(yajl_gen g, const char *k, long long v);
void cric_yj_kv_bool(yajl_gen g, const char *k, bool v);
/** "k": [v...] from a NULL-terminated vector (NULL: an empty array). */
void cric_yj_kv_strv(yajl_gen g, const char *k, char *const *v);
/** Parses a JSON text; NULL on error with a message in ebuf. */
yajl_val cric_yj_parse(const char *text, char *ebuf, size_t ebuf_len);
/** The member key of object v, or NULL if v is not an object or lacks it. */
yajl_val cric_yj_get(yajl_val v, const char *key);
/** String member or NULL. */
const char *cric_yj_get_str(yajl_val v, const char *key);
/** Takes the generated text out of g (malloc'd copy); NULL on OOM. */
char *cric_yj_gen_take(yajl_gen g, size_t *len);

#endif
