/*
 * ktls_syscalls.c - the system calls of the kTLS path behind one table
 * of function pointers (s2n-tls's seam, tls/s2n_ktls.c). Production code
 * always gets the real calls; tests/test_offload.c swaps in a kernel
 * that refuses each step with each errno it documents.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/sendfile.h>
#include <sys/socket.h>

#include "ktls_internal.h"

/*
 * Kernels that can rekey (6.14+) count it in /proc/net/tls_stat; asking
 * there lets us refuse before a KeyUpdate goes out that we could not
 * follow with a new key.
 */
static int
proc_can_rekey(void)
{
	char line[128];
	FILE *f = fopen("/proc/net/tls_stat", "re");
	int yes = 0;

	if (f == NULL)
		return 0;
	while (!yes && fgets(line, sizeof(line), f) != NULL)
		yes = strncmp(line, "TlsTxRekeyOk", 12) == 0;
	fclose(f);
	return yes;
}

static const struct ktls_syscalls real = {
	.setsockopt = setsockopt,
	.getsockopt = getsockopt,
	.sendmsg = sendmsg,
	.recvmsg = recvmsg,
	.write = write,
	.sendfile = sendfile,
	.kernel_can_rekey = proc_can_rekey,
};

static const struct ktls_syscalls *in_use = &real;

const struct ktls_syscalls *
ktls_syscalls(void)
{
	return in_use;
}

void
ktls_syscalls_set_for_testing(const struct ktls_syscalls *sys)
{
	in_use = sys != NULL ? sys : &real;
}

int
ktls_kernel_can_rekey(void)
{
	return in_use->kernel_can_rekey();
}
