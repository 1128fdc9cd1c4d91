/*
 * fake_kernel.c - the kernel behind the kTLS module's syscall seam, for
 * the unit tests (see fake_kernel.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fake_kernel.h"

struct fake_kernel fake;

void
fake_reset(int fail_at, int err)
{
	memset(&fake, 0, sizeof(fake));
	fake.fail_at = fail_at;
	fake.err = err;
}

static int
fake_setsockopt(int fd, int level, int optname, const void *optval,
    socklen_t optlen)
{
	struct tls_crypto_info info = { 0, 0 };
	struct fake_call *c;
	int n = fake.ncalls++;

	if (n >= FAKE_MAX_CALLS) {
		errno = E2BIG;
		return -1;
	}
	c = &fake.calls[n];
	c->fd = fd;
	c->level = level;
	c->optname = optname;
	c->optlen = optlen;
	if (level == SOL_TCP && optname == TCP_ULP)
		snprintf(c->ulp, sizeof(c->ulp), "%.*s", (int)optlen,
		    (const char *)optval);
	if (level == SOL_TLS && (optname == TLS_TX || optname == TLS_RX) &&
	    optlen >= sizeof(info)) {
		memcpy(&info, optval, sizeof(info));
		memcpy(c->info, optval,
		    optlen < sizeof(c->info) ? optlen : sizeof(c->info));
	}
	c->version = info.version;
	c->cipher = info.cipher_type;
	if (n != fake.fail_at)
		return 0;
	errno = fake.err;
	return -1;
}

static int
fake_getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
{
	(void)fd;
	fake.getsockopts++;
	if (level == SOL_SOCKET && optname == SO_ERROR &&
	    *optlen >= sizeof(int)) {
		memset(optval, 0, sizeof(int));
		*optlen = sizeof(int);
		return 0;
	}
	errno = ENOPROTOOPT;
	return -1;
}

static ssize_t
fake_recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg);
	const struct fake_record *r;
	size_t n;

	(void)fd, (void)flags;
	if (fake.rx_err != 0) {
		errno = fake.rx_err;
		return -1;
	}
	if (fake.rx_next == fake.nrx || cmsg == NULL) {
		msg->msg_controllen = 0; /* the peer's FIN: no record type */
		return 0;
	}
	r = &fake.rx[fake.rx_next++];
	n = r->len < msg->msg_iov[0].iov_len ? r->len : msg->msg_iov[0].iov_len;
	memcpy(msg->msg_iov[0].iov_base, r->b, n);
	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_GET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(unsigned char));
	*CMSG_DATA(cmsg) = r->type;
	msg->msg_controllen = CMSG_SPACE(sizeof(unsigned char));
	return (ssize_t)n;
}

static ssize_t
fake_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	const struct cmsghdr *cmsg = CMSG_FIRSTHDR(msg);
	struct fake_record *r;
	size_t len = msg->msg_iov[0].iov_len;

	(void)fd, (void)flags;
	if (fake.ntx == FAKE_MAX_RECORDS) {
		errno = ENOBUFS;
		return -1;
	}
	r = &fake.tx[fake.ntx++];
	r->type = cmsg != NULL && cmsg->cmsg_level == SOL_TLS &&
		cmsg->cmsg_type == TLS_SET_RECORD_TYPE ?
	    *CMSG_DATA(cmsg) :
	    23;
	r->len = len;
	memcpy(r->b, msg->msg_iov[0].iov_base,
	    len < sizeof(r->b) ? len : sizeof(r->b));
	return (ssize_t)len;
}

static ssize_t
fake_write(int fd, const void *buf, size_t len)
{
	(void)fd, (void)buf;
	if (fake.io_err == 0)
		return (ssize_t)len;
	errno = fake.io_err;
	return -1;
}

static ssize_t
/* NOLINTNEXTLINE(readability-non-const-parameter): sendfile's signature */
fake_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
	(void)out_fd, (void)in_fd, (void)offset, (void)count;
	if (fake.io_err == 0)
		return 0;
	errno = fake.io_err;
	return -1;
}

static int
fake_can_rekey(void)
{
	return fake.can_rekey;
}

const struct ktls_syscalls fake_kernel_calls = {
	.setsockopt = fake_setsockopt,
	.getsockopt = fake_getsockopt,
	.sendmsg = fake_sendmsg,
	.recvmsg = fake_recvmsg,
	.write = fake_write,
	.sendfile = fake_sendfile,
	.kernel_can_rekey = fake_can_rekey,
};
