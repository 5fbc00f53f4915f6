#include "config.h"
#include "image_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int t_write_tar(const char *path, const struct tar_ent *ents, size_t n, const char *compression, char *diff_id)
{
    /* Write the plain tar to memory first (for the diff ID), then compress. */
    size_t cap = 1 << 20, used = 0;
    char *buf = malloc(cap);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open_memory(a, buf, cap, &used) != ARCHIVE_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, ents[i].path);
        archive_entry_set_uid(e, ents[i].uid);
        archive_entry_set_gid(e, ents[i].gid);
        archive_entry_set_mtime(e, 1000000000, 0);
        unsigned mode = ents[i].mode ? ents[i].mode : 0644;
        switch (ents[i].kind) {
        case T_FILE:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, ents[i].data ? (la_int64_t)strlen(ents[i].data) : 0);
            break;
        case T_DIR:
            archive_entry_set_filetype(e, AE_IFDIR);
            if (!ents[i].mode)
                mode = 0755;
            break;
        case T_SYMLINK:
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, ents[i].data);
            mode = 0777;
            break;
        case T_HARDLINK:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, ents[i].data);
            archive_entry_set_size(e, 0);
            break;
        case T_CHR:
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdevmajor(e, 1);
            archive_entry_set_rdevminor(e, 3);
            break;
        }
        archive_entry_set_perm(e, mode);
        if (ents[i].xattr_name)
            archive_entry_xattr_add_entry(e, ents[i].xattr_name, ents[i].xattr_val, strlen(ents[i].xattr_val));
        if (archive_write_header(a, e) != ARCHIVE_OK)
            return -1;
        if (ents[i].kind == T_FILE && ents[i].data)
            archive_write_data(a, ents[i].data, strlen(ents[i].data));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    unsigned char md[32];
    unsigned mdlen;
    EVP_Digest(buf, used, md, &mdlen, EVP_sha256(), NULL);
    strcpy(diff_id, "sha256:");
    for (int i = 0; i < 32; i++)
        sprintf(diff_id + 7 + 2 * i, "%02x", md[i]);
    int r = 0;
    if (strcmp(compression, "none") == 0) {
        FILE *f = fopen(path, "wb");
        r = f && fwrite(buf, 1, used, f) == used ? 0 : -1;
        if (f)
            fclose(f);
    } else {
        a = archive_write_new();
        archive_write_set_format_raw(a);
        if (strcmp(compression, "gzip") == 0)
            archive_write_add_filter_gzip(a);
        else
            archive_write_add_filter_zstd(a);
        archive_write_open_filename(a, path);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)used);
        archive_write_header(a, e);
        archive_write_data(a, buf, used);
        archive_entry_free(e);
        r = archive_write_close(a) == ARCHIVE_OK ? 0 : -1;
        archive_write_free(a);
    }
    free(buf);
    return r;
}
