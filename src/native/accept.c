/*
 * The accept hot path and the small fd utilities around it.
 *
 * A child calls accept() once per order from the parent, and the parent may read the accept queue
 * on every dispatch decision, so accept() and acceptQueueLength() make one system call (more only
 * on EINTR) and return a plain number: no object, no string, no allocation unless something
 * went wrong.
 */
#include "prefork.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef PREFORK_HAVE_SOCKET_FILTER
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <string.h>
#endif

/*
 * Errors that mean "this attempt produced no connection", not "this listener is broken": the
 * queue is empty (another child won the race), or the connection at its head died before we took
 * it. Linux also reports pending network errors of the new connection through accept(), and
 * accept(2) says to treat those like EAGAIN; they are included for the same reason.
 */
static bool is_lost_connection(int error_number) {
  switch (error_number) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
#ifdef ENONET
    case ENONET:
#endif
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

static bool is_empty_queue(int error_number) {
  return error_number == EAGAIN || error_number == EWOULDBLOCK;
}

/* accept(fd): the new fd, or -1 when there was nothing to take. */
napi_value prefork_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t listener;
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!prefork_get_int32(env, argv[0], "fd", &listener)) return NULL;

  /* SOCK_CLOEXEC only: the connection stays blocking because libuv switches it to non-blocking
   * itself when net.Socket adopts it, and a handler that wants the raw fd may want it blocking. */
  int fd = prefork_accept_fd(listener, false);
  if (fd < 0) {
    int error_number = errno;
    if (!is_empty_queue(error_number) && !is_lost_connection(error_number)) {
      return prefork_throw_errno(env, error_number, "accept", NULL);
    }
  }

  napi_value result;
  if (napi_create_int32(env, fd < 0 ? -1 : fd, &result) != napi_ok) {
    if (fd >= 0) close(fd);
    prefork_throw_last_napi_error(env);
    return NULL;
  }
  return result;
}

/*
 * Reads the accept queue of a TCP listener. Returns 1 and fills `length` and `limit`; 0 when the
 * answer is unknown (not TCP, not listening, not Linux); or a negative errno.
 */
static int read_accept_queue(int fd, uint32_t *length, uint32_t *limit) {
#ifdef PREFORK_HAVE_TCP_INFO
  struct tcp_info tcp_info;
  socklen_t size = sizeof tcp_info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp_info, &size) < 0) {
    int error_number = errno;
    if (error_number == ENOTSOCK || error_number == EOPNOTSUPP || error_number == ENOPROTOOPT ||
        error_number == EINVAL) {
      return 0;
    }
    return -error_number;
  }
  /* Only on a LISTEN socket does Linux alias these two fields to the accept queue (the current
   * length and the backlog after the somaxconn cap); elsewhere they count unacknowledged and
   * SACKed segments. */
  if (size < offsetof(struct tcp_info, tcpi_sacked) + sizeof tcp_info.tcpi_sacked ||
      tcp_info.tcpi_state != TCP_LISTEN) {
    return 0;
  }
  *length = tcp_info.tcpi_unacked;
  *limit = tcp_info.tcpi_sacked;
  return 1;
#else
  (void)fd;
  (void)length;
  (void)limit;
  return 0;
#endif
}

/* socketpair(): [a, b], a connected AF_UNIX stream pair, both non-blocking and close-on-exec. The
 * pool keeps one end and gives the other to a child as its control channel. */
napi_value prefork_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (prefork_socketpair_fds(AF_UNIX, SOCK_STREAM, fds) < 0) {
    return prefork_throw_errno(env, errno, "socketpair", NULL);
  }
  napi_value result, first, second;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok ||
      napi_create_int32(env, fds[0], &first) != napi_ok ||
      napi_create_int32(env, fds[1], &second) != napi_ok ||
      napi_set_element(env, result, 0, first) != napi_ok ||
      napi_set_element(env, result, 1, second) != napi_ok) {
    close(fds[0]);
    close(fds[1]);
    prefork_throw_last_napi_error(env);
    return NULL;
  }
  return result;
}

/* Reads (fd, typed array, offset, length) arguments of read()/write(); false after throwing. */
static bool get_io_arguments(napi_env env, napi_callback_info info, int32_t *fd, uint8_t **bytes,
                             size_t *length) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    prefork_throw_last_napi_error(env);
    return false;
  }
  if (!prefork_get_int32(env, argv[0], "fd", fd)) return false;
  bool is_typed_array = false;
  napi_is_typedarray(env, argv[1], &is_typed_array);
  if (!is_typed_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "buffer must be a Uint8Array");
    return false;
  }
  napi_typedarray_type type;
  size_t element_count;
  void *data;
  if (napi_get_typedarray_info(env, argv[1], &type, &element_count, &data, NULL, NULL) != napi_ok) {
    prefork_throw_last_napi_error(env);
    return false;
  }
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "buffer must be a Uint8Array");
    return false;
  }
  int32_t offset, count;
  if (!prefork_get_optional_int32(env, argv[2], "offset", 0, &offset)) return false;
  if (!prefork_get_optional_int32(env, argv[3], "length", (int32_t)element_count - offset, &count)) return false;
  if (offset < 0 || count < 0 || (size_t)offset + (size_t)count > element_count) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "offset and length must lie within the buffer");
    return false;
  }
  *bytes = (uint8_t *)data + offset;
  *length = (size_t)count;
  return true;
}

/* read(fd, buffer, offset?, length?): bytes read; 0 at end of stream (or a reset peer); -1 when
 * nothing is there (EAGAIN). Other errors throw. One syscall, no allocation. */
napi_value prefork_read(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint8_t *bytes;
  size_t length;
  if (!get_io_arguments(env, info, &fd, &bytes, &length)) return NULL;
  ssize_t got;
  do {
    got = read(fd, bytes, length);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) got = -1;
    else if (errno == ECONNRESET) got = 0;
    else return prefork_throw_errno(env, errno, "read", NULL);
  }
  napi_value result;
  PREFORK_CALL(env, napi_create_int32(env, (int32_t)got, &result));
  return result;
}

/* write(fd, buffer, offset?, length?): bytes written (maybe fewer than asked); -1 when the socket
 * buffer is full (EAGAIN). EPIPE/ECONNRESET (the peer is gone) throw like other errors; MSG_NOSIGNAL
 * (where it exists) keeps SIGPIPE away where fd is a socket. */
napi_value prefork_write(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint8_t *bytes;
  size_t length;
  if (!get_io_arguments(env, info, &fd, &bytes, &length)) return NULL;
  ssize_t sent;
  do {
    sent = send(fd, bytes, length, PREFORK_SEND_FLAGS);
    if (sent < 0 && errno == ENOTSOCK) sent = write(fd, bytes, length);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) sent = -1;
    else return prefork_throw_errno(env, errno, "write", NULL);
  }
  napi_value result;
  PREFORK_CALL(env, napi_create_int32(env, (int32_t)sent, &result));
  return result;
}

/* shutdownListener(fd): shutdown(SHUT_RD) on a listening socket. Unlike close(), it acts on the
 * socket itself, which the children share: Linux stops the listener, so later connects are refused
 * at once instead of waiting in a backlog nobody will accept from. ENOTCONN (nothing to shut) is
 * not an error. */
napi_value prefork_shutdown_listener(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  if (shutdown(fd, SHUT_RD) < 0 && errno != ENOTCONN) return prefork_throw_errno(env, errno, "shutdown", NULL);
  return NULL;
}

/*
 * holdNewConnections(fd): makes a TCP listener ignore new connection attempts while it keeps the
 * ones already queued, the first step of a stop that loses nothing. A classic BPF socket filter
 * on the listening socket (shared by every process that holds it) drops each packet with SYN set
 * and ACK clear: the kernel never answers a new SYN, while the final ACK of a handshake already
 * under way still completes it into the queue. Clients retransmit their SYN (after 1 s on Linux),
 * and by then the pool has drained the queue and shut the listener down, so the retry is refused
 * and a front proxy moves on to another server without having sent its request. Closing or
 * shutting down the listener instead resets every queued connection, whose client has often sent
 * its request already. The filter sees the TCP header at offset 0; byte 13 holds the flags.
 * Returns false (and does nothing) for a Unix socket or a build without socket filters.
 */
napi_value prefork_hold_new_connections(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  bool held = false;
#ifdef PREFORK_HAVE_SOCKET_FILTER
  int domain = 0;
  socklen_t length = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) < 0) return prefork_throw_errno(env, errno, "getsockopt", NULL);
  if (domain == AF_INET || domain == AF_INET6) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),            /* SYN | ACK */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),      /* SYN alone: a new attempt */
        BPF_STMT(BPF_RET | BPF_K, 0),                         /* drop it */
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),                /* keep everything else */
    };
    struct sock_fprog program = {.len = sizeof code / sizeof code[0], .filter = code};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) < 0) return prefork_throw_errno(env, errno, "setsockopt", NULL);
    held = true;
  }
#else
  (void)fd;
#endif
  napi_value result;
  PREFORK_CALL(env, napi_get_boolean(env, held, &result));
  return result;
}

#ifdef PREFORK_HAVE_SOCKET_FILTER
/*
 * Counts the handshakes of `family` in SYN-RECV on the local address and port of `local` (a
 * wildcard address matches any), with one sock_diag dump (what `ss state syn-recv` reads).
 * Returns the count, or -errno.
 */
static int count_syn_recv(int family, const struct sockaddr_storage *local) {
  int diag = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (diag < 0) return -errno;
  struct {
    struct nlmsghdr header;
    struct inet_diag_req_v2 request;
  } message;
  memset(&message, 0, sizeof message);
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = (uint8_t)family;
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = 1u << 3; /* TCP_SYN_RECV */
  if (send(diag, &message, sizeof message, 0) < 0) {
    int error_number = errno;
    close(diag);
    return -error_number;
  }
  uint16_t port = local->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)local)->sin6_port : ((const struct sockaddr_in *)local)->sin_port;
  bool any = local->ss_family == AF_INET6 ? IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)local)->sin6_addr) : ((const struct sockaddr_in *)local)->sin_addr.s_addr == htonl(INADDR_ANY);
  int count = 0;
  char buffer[16384] __attribute__((aligned(4)));
  for (;;) {
    ssize_t got = recv(diag, buffer, sizeof buffer, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      count = got < 0 ? -errno : count;
      break;
    }
    for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)got); header = NLMSG_NEXT(header, got)) {
      if (header->nlmsg_type == NLMSG_DONE) goto done;
      if (header->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *error = NLMSG_DATA(header);
        count = error->error < 0 ? error->error : -EPROTO;
        goto done;
      }
      const struct inet_diag_msg *entry = NLMSG_DATA(header);
      if (entry->id.idiag_sport != port) continue;
      if (!any) {
        if (local->ss_family == AF_INET6 && family == AF_INET6 && memcmp(entry->id.idiag_src, &((const struct sockaddr_in6 *)local)->sin6_addr, 16) != 0) continue;
        if (local->ss_family == AF_INET && entry->id.idiag_src[0] != ((const struct sockaddr_in *)local)->sin_addr.s_addr) continue;
      }
      count++;
    }
  }
done:
  close(diag);
  return count;
}
#endif

/*
 * pendingHandshakes(fd): how many connections to this TCP listener are half-way through their
 * handshake (SYN received, final ACK not yet), or -1 where the system does not tell (a Unix
 * socket, a build without sock_diag). A stop that holds new connections out waits for these to
 * complete into the queue, so that it can drain them instead of resetting them.
 */
napi_value prefork_pending_handshakes(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  int32_t count = -1;
#ifdef PREFORK_HAVE_SOCKET_FILTER
  struct sockaddr_storage local;
  socklen_t length = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &length) < 0) return prefork_throw_errno(env, errno, "getsockname", NULL);
  if (local.ss_family == AF_INET || local.ss_family == AF_INET6) {
    int found = count_syn_recv(local.ss_family, &local);
    /* A dual-stack IPv6 listener takes IPv4 handshakes too. */
    if (found >= 0 && local.ss_family == AF_INET6) {
      int mapped = count_syn_recv(AF_INET, &local);
      found = mapped < 0 ? mapped : found + mapped;
    }
    if (found < 0) return prefork_throw_errno(env, -found, "sock_diag", NULL);
    count = found;
  }
#else
  (void)fd;
#endif
  napi_value result;
  PREFORK_CALL(env, napi_create_int32(env, count, &result));
  return result;
}

/* readable(fd): whether a connection waits right now (poll with a zero timeout). Works for every
 * kind of listener, so it tells an empty Unix-socket backlog, where TCP_INFO gives nothing. */
napi_value prefork_readable(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  struct pollfd entry = {.fd = fd, .events = POLLIN, .revents = 0};
  int ready;
  do {
    ready = poll(&entry, 1, 0);
  } while (ready < 0 && errno == EINTR);
  if (ready < 0) return prefork_throw_errno(env, errno, "poll", NULL);
  if (entry.revents & POLLNVAL) return prefork_throw_errno(env, EBADF, "poll", NULL);
  napi_value result;
  PREFORK_CALL(env, napi_get_boolean(env, ready > 0 && (entry.revents & POLLIN) != 0, &result));
  return result;
}

/* acceptQueueLength(fd): the number of connections waiting, or -1 when unknown. */
napi_value prefork_accept_queue_length(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;

  uint32_t length = 0, limit = 0;
  int outcome = read_accept_queue(fd, &length, &limit);
  if (outcome < 0) return prefork_throw_errno(env, -outcome, "getsockopt", NULL);
  napi_value result;
  PREFORK_CALL(env, napi_create_int32(env, outcome > 0 ? (int32_t)length : -1, &result));
  return result;
}

/* acceptQueue(fd): { length, limit }, or null when unknown. */
napi_value prefork_accept_queue(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;

  uint32_t length = 0, limit = 0;
  int outcome = read_accept_queue(fd, &length, &limit);
  if (outcome < 0) return prefork_throw_errno(env, -outcome, "getsockopt", NULL);
  napi_value result;
  if (outcome == 0) {
    PREFORK_CALL(env, napi_get_null(env, &result));
    return result;
  }
  napi_value length_value, limit_value;
  PREFORK_CALL(env, napi_create_object(env, &result));
  PREFORK_CALL(env, napi_create_uint32(env, length, &length_value));
  PREFORK_CALL(env, napi_create_uint32(env, limit, &limit_value));
  PREFORK_CALL(env, napi_set_named_property(env, result, "length", length_value));
  PREFORK_CALL(env, napi_set_named_property(env, result, "limit", limit_value));
  return result;
}

/*
 * Sends `response` (best effort), then closes the connection as gently as a synchronous call can:
 * shutdown() sends our FIN behind the response, and reading what the client already sent matters
 * because closing a socket with unread input makes Linux send a RST, and a RST can make the
 * client discard the response before reading it.
 */
static void refuse_connection(int fd, const void *response, size_t response_length) {
  if (response_length > 0) {
    ssize_t sent;
    do {
      sent = send(fd, response, response_length, PREFORK_SEND_FLAGS | MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
  }
  shutdown(fd, SHUT_WR);
  /* Bounded, so that a client streaming a large upload cannot keep the parent here. */
  char sink[4096];
  for (int reads = 0; reads < 16; reads++) {
    ssize_t received = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (received > 0 || (received < 0 && errno == EINTR)) continue;
    break;
  }
  close(fd);
}

/* Reads the optional `response` argument: undefined/null, a Buffer or any typed array. */
static bool get_response(napi_env env, napi_value value, void **data, size_t *length) {
  *data = NULL;
  *length = 0;
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_undefined || type == napi_null) return true;

  bool is_typed_array = false;
  napi_typedarray_type array_type;
  size_t element_count = 0;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array ||
      napi_get_typedarray_info(env, value, &array_type, &element_count, data, NULL, NULL) !=
          napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "response must be a Buffer, a Uint8Array or null");
    return false;
  }
  size_t element_size = 1;
  switch (array_type) {
    case napi_int16_array:
    case napi_uint16_array:
      element_size = 2;
      break;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      element_size = 4;
      break;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      element_size = 8;
      break;
    default:
      break;
  }
  *length = element_count * element_size;
  return true;
}

/* acceptAndClose(fd, max, response): how many connections were refused. */
napi_value prefork_accept_and_close(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t listener, max;
  void *response = NULL;
  size_t response_length = 0;
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!prefork_get_int32(env, argv[0], "fd", &listener) ||
      !prefork_get_int32(env, argv[1], "max", &max) ||
      !get_response(env, argv[2], &response, &response_length)) {
    return NULL;
  }

  int32_t closed = 0;
  int failure = 0;
  for (int32_t attempt = 0; attempt < max; attempt++) {
    int fd = prefork_accept_fd(listener, true);
    if (fd < 0) {
      int error_number = errno;
      if (is_empty_queue(error_number)) break;
      if (is_lost_connection(error_number)) continue;
      failure = error_number;
      break;
    }
    refuse_connection(fd, response, response_length);
    closed++;
  }
  /* Having closed some is the useful outcome; the error will come back on the next call. */
  if (closed == 0 && failure != 0) return prefork_throw_errno(env, failure, "accept", NULL);

  napi_value result;
  PREFORK_CALL(env, napi_create_int32(env, closed, &result));
  return result;
}

int prefork_update_cloexec(int fd, bool on) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return errno;
  int wanted = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (wanted != flags && fcntl(fd, F_SETFD, wanted) < 0) return errno;
  return 0;
}

int prefork_update_nonblocking(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return errno;
  int wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  if (wanted != flags && fcntl(fd, F_SETFL, wanted) < 0) return errno;
  return 0;
}

#ifndef PREFORK_HAVE_SOCK_FLAGS
/* Sets FD_CLOEXEC, and O_NONBLOCK on or off as asked, on a new fd (the fallback path of the
 * helpers below); closes it and returns -1 with errno set when that fails. accept() gives a
 * blocking fd on most systems but inherits O_NONBLOCK from the listener on some BSDs, so the mode
 * is set either way. */
static int finish_new_fd(int fd, bool nonblocking) {
  int error_number = prefork_update_cloexec(fd, true);
  if (error_number == 0) error_number = prefork_update_nonblocking(fd, nonblocking);
  if (error_number != 0) {
    close(fd);
    errno = error_number;
    return -1;
  }
  return fd;
}
#endif

/* Without the SOCK_* flags there is a window between the call and fcntl() in which a fork would
 * inherit the fd. Node forks children from the main thread, the one running this code, so no
 * child of ours is created inside that window. */
int prefork_socket(int domain, int type, int protocol) {
#ifdef PREFORK_HAVE_SOCK_FLAGS
  return socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
#else
  int fd = socket(domain, type, protocol);
  return fd < 0 ? -1 : finish_new_fd(fd, true);
#endif
}

int prefork_socketpair_fds(int domain, int type, int fds[2]) {
#ifdef PREFORK_HAVE_SOCK_FLAGS
  return socketpair(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
#else
  if (socketpair(domain, type, 0, fds) < 0) return -1;
  if (finish_new_fd(fds[0], true) < 0) {
    int error_number = errno;
    close(fds[1]);
    errno = error_number;
    return -1;
  }
  if (finish_new_fd(fds[1], true) < 0) {
    int error_number = errno;
    close(fds[0]);
    errno = error_number;
    return -1;
  }
  return 0;
#endif
}

int prefork_accept_fd(int listener, bool nonblocking) {
  int fd;
  do {
#ifdef PREFORK_HAVE_SOCK_FLAGS
    fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0));
#else
    fd = accept(listener, NULL, NULL);
#endif
  } while (fd < 0 && errno == EINTR);
#ifdef PREFORK_HAVE_SOCK_FLAGS
  return fd;
#else
  return fd < 0 ? -1 : finish_new_fd(fd, nonblocking);
#endif
}

/* Shared body of setCloexec(fd, on) and setNonblocking(fd, on). */
static napi_value update_flag(napi_env env, napi_callback_info info, int (*update)(int, bool)) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  bool on = false;
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!prefork_get_int32(env, argv[0], "fd", &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "on must be a boolean");
    return NULL;
  }
  int error_number = update(fd, on);
  if (error_number != 0) return prefork_throw_errno(env, error_number, "fcntl", NULL);
  return NULL;
}

napi_value prefork_set_cloexec(napi_env env, napi_callback_info info) {
  return update_flag(env, info, prefork_update_cloexec);
}

napi_value prefork_set_nonblocking(napi_env env, napi_callback_info info) {
  return update_flag(env, info, prefork_update_nonblocking);
}

/* close(fd) */
napi_value prefork_close(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  /* Linux releases the fd even when close() reports EINTR; retrying could close an fd that
   * another thread (a libuv worker) has just been given. */
  if (close(fd) < 0 && errno != EINTR) return prefork_throw_errno(env, errno, "close", NULL);
  return NULL;
}
