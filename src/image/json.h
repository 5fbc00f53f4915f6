/* Small yajl_tree helpers shared by the image module (internal). */
#ifndef CRIC_IMAGE_JSON_H
#define CRIC_IMAGE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "util/err.h"
#include "util/yj.h"

/** Parses len bytes of JSON (need not be NUL-terminated).  what names the
 * document in the error ("manifest 'sha256:…'"). */
int cric__json_parse(const char *data, size_t len, const char *what, yajl_val *out, cric_error **err);
/** Member of an object or NULL. */
yajl_val cric__json_get(yajl_val obj, const char *key);
/** String member or NULL when absent or not a string. */
const char *cric__json_str(yajl_val obj, const char *key);
/** Copies a JSON array of strings into a NULL-terminated vector; absent/null
 * gives an empty vector; anything else -EINVAL. */
int cric__json_strv(yajl_val v, char ***out);
/** Copies an object's keys into a NULL-terminated vector. */
int cric__json_keys(yajl_val v, char ***out);
/* Generating: cric_yj_gen_str, cric_yj_kv_str and cric_yj_kv_strv (util/yj.h). */
/** Takes the generated buffer as a malloc'd NUL-terminated string. */
int cric__gen_take(yajl_gen g, char **out);

char **cric__strv_new(void);
size_t cric__strv_len(char *const *v);
/** Appends a copy of s; -ENOMEM on failure (v unchanged). */
int cric__strv_push(char ***v, const char *s);
/** Removes every entry equal to s; returns how many were removed. */
int cric__strv_remove(char **v, const char *s);
bool cric__strv_contains(char *const *v, const char *s);

#endif
