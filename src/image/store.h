/* The on-disk image store: content-addressed blobs, layers unpacked once per
 * chain ID, and image records (ID = config digest) with tags and digests.
 *
 * Layout under <root>/images/:
 *   blobs/sha256/<hex>          config and manifest blobs (verified)
 *   layers/<chainhex>/diff/     unpacked layer, an overlayfs lower dir
 *   layers/<chainhex>/size      bytes used by diff/ (text)
 *   records/<idhex>.json        one image record, written atomically
 *   tmp/                        partial downloads and unpacks; emptied at open
 *
 * The store is owned by the loop thread; its functions only do small file
 * operations (records, renames).  Tree removal is handed back to the caller
 * (cric_image_store_gc) so that it can run on the thread pool. */
#ifndef CRIC_IMAGE_STORE_H
#define CRIC_IMAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/err.h"

/** The parts of the OCI image config a container needs.  String lists are
 * NULL-terminated (never NULL themselves, possibly empty). */
struct cric_image_config {
    char *user;            /* "" when unset */
    char **env;            /* "K=V" */
    char **entrypoint;
    char **cmd;
    char *working_dir;     /* "" when unset */
    char *stop_signal;     /* "" when unset */
    char **exposed_ports;  /* "80/tcp" */
    char **volumes;        /* "/data" */
    char **labels;         /* "key=value" */
    char *os;
    char *architecture;
    char *created;         /* RFC 3339 from the config, "" when unset */
};

struct cric_image {
    char *id;                /* "sha256:<64 hex>", the config digest */
    char **repo_tags;        /* "docker.io/library/busybox:latest" (NULL-terminated) */
    char **repo_digests;     /* "docker.io/library/busybox@sha256:..." (NULL-terminated) */
    char **chain_ids;        /* "sha256:<hex>", lowest layer first (NULL-terminated) */
    size_t n_layers;
    uint64_t size;           /* bytes of unpacked layers + config */
    bool pinned;             /* listed in images.pinned */
    int64_t pulled_ns;       /* when the record was written (orders tag moves) */
    struct cric_image_config config;
};

struct cric_image_store;

/** Opens (creating) the store under root/images, loads every record and
 * cleans leftovers of interrupted pulls.  Blocking: call at start-up. */
int cric_image_store_open(const char *root, struct cric_image_store **out, cric_error **err);
void cric_image_store_free(struct cric_image_store *s);

/* ---- several processes: cricd and its cric-pull helpers ----
 * Helpers add blobs and layers (content-addressed, renamed into place; a
 * lost race discards the duplicate); only cricd writes records. */

/** Opens the store for a cric-pull helper: creates the directories, loads no
 * record, cleans nothing; released layers are never deleted (cricd sweeps
 * them); commit writes no record and moves no tag (it only fills the image
 * for the helper's answer).  Its trash is tmp/<pid>-trash. */
int cric_image_store_open_shared(const char *root, struct cric_image_store **out, cric_error **err);
/** cricd: a helper starts / has finished.  While any runs, RemoveImage
 * keeps unused layers and config blobs on disk (a helper may have found
 * them); the last end moves every layer and blob no record or hold uses
 * into the trash (cheap renames; then run cric_image_store_gc if it returns
 * non-zero: how many entries it moved). */
void cric_image_store_pulls_begin(struct cric_image_store *s);
unsigned cric_image_store_pulls_end(struct cric_image_store *s);
/** cricd: moves tmp/<pid>-* (partial files of an exited helper) into the
 * trash; returns how many entries it moved. */
unsigned cric_image_store_sweep_pid(struct cric_image_store *s, int pid);

/** Looks an image up by ID ("sha256:<hex>", "<hex>", or a unique hex prefix of
 * at least 3 chars), tag ("busybox" = "docker.io/library/busybox:latest") or
 * digest ("repo@sha256:<hex>").  -ENOENT (no error message) when absent;
 * -EINVAL with a message for an invalid reference.  *out is borrowed: valid
 * until the next change to the store on the loop thread. */
int cric_image_store_lookup(struct cric_image_store *s, const char *ref, const struct cric_image **out,
                            cric_error **err);

/** All images (borrowed array, valid until the next change). */
const struct cric_image *const *cric_image_store_list(struct cric_image_store *s, size_t *n);

/** The absolute paths of img's layer diff directories, lowest first
 * (reverse it for overlayfs lowerdir=, which lists the top first).
 * *dirs is a NULL-terminated array the caller frees with cric_strv_free(). */
int cric_image_store_layer_dirs(struct cric_image_store *s, const struct cric_image *img, char ***dirs,
                                cric_error **err);

/** Marks the images that the given references resolve to as pinned
 * (NULL-terminated list; unknown ones are kept and applied when pulled). */
int cric_image_store_set_pinned(struct cric_image_store *s, char *const *refs, cric_error **err);

/** Removes the image ref resolves to.  A tag that is one of several of the
 * image only drops that tag; an ID or digest removes the image.  -ENOENT
 * when absent, -EPERM for a pinned image.  Layers no image uses any more are
 * moved into the trash: call cric_image_store_gc() (thread-pool safe). */
int cric_image_store_remove(struct cric_image_store *s, const char *ref, cric_error **err);
/** Deletes the trash directory's contents.  Touches no in-memory state, so it
 * may run on a worker thread.  trash_dir from cric_image_store_trash_dir(). */
int cric_image_store_gc(const char *trash_dir, cric_error **err);
const char *cric_image_store_trash_dir(struct cric_image_store *s);
/** Runs cric_image_store_gc on the thread pool.  Returns 0 when queued (then
 * done, if not NULL, runs on the loop once the sweep is over) or < 0. */
int cric_image_store_gc_queue(uv_loop_t *loop, struct cric_image_store *s, void (*done)(void *data), void *data);

/** Bytes and inodes used under the store, and its directory. Blocking (walks
 * the tree): run it on the thread pool with a copied path. */
int cric_image_store_usage(const char *images_dir, uint64_t *bytes, uint64_t *inodes, cric_error **err);
const char *cric_image_store_dir(struct cric_image_store *s);

/* ---- used by the puller ---- */

/** Whether layer chain_id ("sha256:<hex>") is unpacked in the store. */
bool cric_image_store_has_layer(struct cric_image_store *s, const char *chain_id);
/** If the layer is present, holds it (RemoveImage will not free it until
 * released) and returns true. */
bool cric_image_store_hold_layer(struct cric_image_store *s, const char *chain_id);
/** Drops a hold taken by hold_layer or add_layer; a layer that no image and
 * no hold uses any more goes to the trash (a failed pull leaves nothing). */
void cric_image_store_release_layer(struct cric_image_store *s, const char *chain_id);
/** Directory for temporary files of one pull: <root>/images/tmp. */
const char *cric_image_store_tmp_dir(struct cric_image_store *s);
/** Moves an unpacked temp dir (containing diff/ and size) into place as
 * chain_id and holds it.  Already present = success (the temp dir is moved
 * to the trash). */
int cric_image_store_add_layer(struct cric_image_store *s, const char *chain_id, const char *tmp_dir,
                               cric_error **err);
/** Moves a temporary path (of a failed unpack) into the trash. */
int cric_image_store_discard(struct cric_image_store *s, const char *path, cric_error **err);
/** Stores a verified blob (config or manifest) under its digest. */
int cric_image_store_put_blob(struct cric_image_store *s, const char *digest, const void *data, size_t len,
                              cric_error **err);

/** What a finished pull commits: the config blob must already be stored
 * and every layer present. */
struct cric_image_commit {
    const char *config_digest;  /* image ID */
    const char *repo_tag;       /* may be NULL (pull by digest) */
    const char *repo_digest;    /* "repo@sha256:<manifest digest>" */
    char *const *chain_ids;     /* lowest first, n_layers of them */
    size_t n_layers;
};
/** Writes/updates the record atomically and moves repo_tag onto it. */
int cric_image_store_commit(struct cric_image_store *s, const struct cric_image_commit *c,
                            const struct cric_image **out, cric_error **err);

/** Renders img as the JSON "info" map of ImageStatus verbose (caller frees). */
int cric_image_to_json(const struct cric_image *img, char **out, cric_error **err);

void cric_strv_free(char **v);

#endif
