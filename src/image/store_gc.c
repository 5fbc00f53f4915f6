#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image/store.h"

/* The trash sweep on the thread pool; the job owns its copy of the path. */
struct gc_job {
    uv_work_t work;
    char *trash;
    void (*done)(void *data);
    void *data;
};

static void gc_work(uv_work_t *w)
{
    struct gc_job *j = w->data;
    cric_image_store_gc(j->trash, NULL);
}

static void gc_after(uv_work_t *w, int status)
{
    (void)status;
    struct gc_job *j = w->data;
    void (*done)(void *) = j->done;
    void *data = j->data;
    free(j->trash);
    free(j);
    if (done)
        done(data);
}

int cric_image_store_gc_queue(uv_loop_t *loop, struct cric_image_store *s, void (*done)(void *data), void *data)
{
    struct gc_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->trash = strdup(cric_image_store_trash_dir(s)))) {
        free(j);
        return -ENOMEM;
    }
    j->done = done;
    j->data = data;
    j->work.data = j;
    int r = uv_queue_work(loop, &j->work, gc_work, gc_after);
    if (r < 0) {
        free(j->trash);
        free(j);
    }
    return r;
}
