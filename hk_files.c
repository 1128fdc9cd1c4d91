/*
 * hk_files.c - open a requested file below the served directory.
 *
 * openat2(RESOLVE_BENEATH) makes the kernel refuse every way out of the
 * directory at once ("..", absolute symlinks, links that climb), with no
 * race between checking a path and opening it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "hk_files.h"

int
hk_file_open_below(int rootfd, const char *path, off_t *size, char *err,
    size_t errlen)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	struct open_how how = {
		.flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	struct stat st;
	int fd;

	if (path[0] == '/' || path[0] == '\0') {
		snprintf(err, errlen,
		    "%s: only paths relative to the served "
		    "directory are allowed",
		    path[0] ? path : "(empty)");
		return -1;
	}
	fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path,
		    errno == EXDEV ?
			"leaves the served directory" :
			errno == ENOSYS ?
			"this kernel cannot open files safely (no openat2)" :
			strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	/* Back to blocking reads for read + SSL_write. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*size = st.st_size;
	return fd;
}
