/* A bag of allocations freed together: responses that borrow most of their
 * strings and own only the message structs they add. */
#ifndef CRIC_CONTAINER_ARENA_H
#define CRIC_CONTAINER_ARENA_H

#include <stdbool.h>
#include <stdlib.h>

struct arena {
    void **p;
    size_t n, cap;
    bool failed; /* an allocation failed: the result is incomplete */
};

static inline void *arena_add(struct arena *a, void *p)
{
    if (!p) {
        a->failed = true;
        return NULL;
    }
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 32;
        void **np = realloc(a->p, nc * sizeof(void *));
        if (!np) {
            free(p);
            a->failed = true;
            return NULL;
        }
        a->p = np;
        a->cap = nc;
    }
    a->p[a->n++] = p;
    return p;
}

static inline void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    return arena_add(a, calloc(n ? n : 1, size));
}

static inline void arena_free(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
}

/* Map entries of the same shape (key, value) differ only in descriptor. */
#define COPY_MAP(a, dst_n, dst, T, INIT, src_n, src)                   \
    do {                                                               \
        (dst) = arena_calloc((a), (src_n), sizeof(T *));               \
        T *ents__ = arena_calloc((a), (src_n), sizeof(T));             \
        if ((dst) && ents__) {                                         \
            for (size_t i__ = 0; i__ < (src_n); i__++) {               \
                ents__[i__] = (T)INIT;                                 \
                ents__[i__].key = (src)[i__]->key;                     \
                ents__[i__].value = (src)[i__]->value;                 \
                (dst)[i__] = &ents__[i__];                             \
            }                                                          \
            (dst_n) = (src_n);                                         \
        }                                                              \
    } while (0)

#endif
