/* Helpers the file formats share; see file_util.h. */
#include "frontends/file_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void prt_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

void prt_fsync_parent(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    prt_fsync_dir(dir);
}

static void *pb_alloc(void *ctx, size_t n) { return prt_malloc(ctx, n ? n : 1); }
static void pb_free(void *ctx, void *p) { prt_free(ctx, p, 0); }

void prt_pb_allocator(prt_context *ctx, ProtobufCAllocator *a) {
    *a = (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = ctx};
}
