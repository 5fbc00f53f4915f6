/* Corpus walking shared by the fuzz replay programs (see fuzz_replay.h). */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz_replay.h"
#include "util/fs.h"

static int run_path(const char *name, const char *path, size_t max_size, void (*fn)(char *, size_t),
                    long *n)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        char *buf = NULL;
        size_t len;
        cric_error *err = NULL;
        if (cric_read_file(path, max_size, &buf, &len, &err) < 0) {
            fprintf(stderr, "%s: %s\n", name, err->msg);
            cric_error_free(err);
            return -1;
        }
        fn(buf, len);
        free(buf);
        (*n)++;
        return 0;
    }
    struct dirent **ents;
    int k = scandir(path, &ents, NULL, alphasort), r = 0;
    if (k < 0) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < k; i++) {
        if (ents[i]->d_name[0] != '.' && r == 0) {
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", path, ents[i]->d_name);
            r = run_path(name, p, max_size, fn, n);
        }
        free(ents[i]);
    }
    free(ents);
    return r;
}

long fuzz_replay(const char *name, const char *corpus, size_t max_size, int argc, char **argv,
                 void (*fn)(char *buf, size_t len))
{
    long n = 0;
    int r = 0;
    if (argc < 2) {
        char def[4096];
        const char *srcdir = getenv("CRIC_SRCDIR");
        snprintf(def, sizeof(def), "%s/%s", srcdir ? srcdir : ".", corpus);
        r = run_path(name, def, max_size, fn, &n);
    }
    for (int i = 1; i < argc && r == 0; i++)
        r = run_path(name, argv[i], max_size, fn, &n);
    return r < 0 ? -1 : n;
}
