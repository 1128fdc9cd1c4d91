/*
 * hk_files.h - opening a file a client asked for, strictly below the
 * served directory.
 */
#ifndef HK_FILES_H
#define HK_FILES_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Open path (relative, as the client sent it) below the directory
 * rootfd, read-only. Refuses absolute paths, ".." and symlinks that
 * lead outside, and anything that is not a regular file. Returns the fd
 * and its size, or -1 with a reason fit to send back to the client.
 */
int hk_file_open_below(int rootfd, const char *path, off_t *size, char *err,
    size_t errlen);

#endif
