/*
 * Facts about one accepted connection that Node does not give: how much of what was written to a
 * TCP connection the peer has acknowledged (TCP_INFO's tcpi_bytes_acked, Linux 4.1 and later),
 * the measure of a slow reader's progress. The kernel's own struct is used (linux/tcp.h): the C
 * library's copy of it lags behind and has no tcpi_bytes_acked.
 */
#include "prefork.h"

#include <errno.h>

#ifdef PREFORK_HAVE_TCP_INFO
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#endif

/* bytesAcked(fd): bytes the peer acknowledged, or -1 where the system does not tell (not TCP, older kernel). */
napi_value prefork_bytes_acked(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  double acked = -1;
#ifdef PREFORK_HAVE_TCP_INFO
  struct tcp_info tcp;
  socklen_t length = sizeof tcp;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp, &length) < 0) {
    if (errno == EBADF) return prefork_throw_errno(env, errno, "getsockopt", NULL);
  } else if (length >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof tcp.tcpi_bytes_acked) {
    acked = (double)tcp.tcpi_bytes_acked;
  }
#else
  (void)fd;
#endif
  napi_value result;
  PREFORK_CALL(env, napi_create_double(env, acked, &result));
  return result;
}
