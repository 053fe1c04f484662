/*
 * Opening, adopting and describing listening sockets.
 *
 * Every listener leaves here non-blocking and close-on-exec: non-blocking because the children
 * share it and each accept must return at once when another child won the race, close-on-exec so
 * that a program a handler spawns does not inherit it by accident. A child that should inherit it
 * gets it through the stdio array of spawn(), whose dup2() leaves the copy without the flag.
 */
#include "prefork.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define UNIX_PATH_CAPACITY (sizeof(((struct sockaddr_un *)NULL)->sun_path))

static bool set_string_property(napi_env env, napi_value object, const char *name,
                                const char *value, size_t length) {
  napi_value string;
  return napi_create_string_utf8(env, value, length, &string) == napi_ok &&
         napi_set_named_property(env, object, name, string) == napi_ok;
}

static bool set_int32_property(napi_env env, napi_value object, const char *name, int32_t value) {
  napi_value number;
  return napi_create_int32(env, value, &number) == napi_ok &&
         napi_set_named_property(env, object, name, number) == napi_ok;
}

/* Throws like prefork_throw_errno after closing `fd`, keeping errno intact for the message. */
static napi_value close_and_throw(napi_env env, int fd, int error_number, const char *syscall,
                                  const char *message) {
  close(fd);
  return prefork_throw_errno(env, error_number, syscall, message);
}

/*
 * Builds the ListenerInfo of `fd` from getsockname(): { fd, family, address, port, path? }. A Unix
 * socket reports its path as `address` too (port 0), so log lines can always print `address`.
 * Abstract Unix names keep their leading NUL byte, as Node reports them.
 */
static napi_value describe_socket(napi_env env, int fd) {
  struct sockaddr_storage address;
  socklen_t address_length = sizeof address;
  if (getsockname(fd, (struct sockaddr *)&address, &address_length) < 0) {
    return prefork_throw_errno(env, errno, "getsockname", NULL);
  }

  napi_value result;
  PREFORK_CALL(env, napi_create_object(env, &result));
  bool written = set_int32_property(env, result, "fd", fd);

  if (address.ss_family == AF_INET) {
    const struct sockaddr_in *inet = (const struct sockaddr_in *)&address;
    char text[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &inet->sin_addr, text, sizeof text);
    written = written && set_string_property(env, result, "family", "IPv4", NAPI_AUTO_LENGTH) &&
              set_string_property(env, result, "address", text, NAPI_AUTO_LENGTH) &&
              set_int32_property(env, result, "port", ntohs(inet->sin_port));
  } else if (address.ss_family == AF_INET6) {
    const struct sockaddr_in6 *inet6 = (const struct sockaddr_in6 *)&address;
    /* getnameinfo rather than inet_ntop so that a link-local address keeps its %interface. */
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1] = "";
    if (getnameinfo((const struct sockaddr *)inet6, sizeof *inet6, text, sizeof text, NULL, 0,
                    NI_NUMERICHOST) != 0) {
      inet_ntop(AF_INET6, &inet6->sin6_addr, text, sizeof text);
    }
    written = written && set_string_property(env, result, "family", "IPv6", NAPI_AUTO_LENGTH) &&
              set_string_property(env, result, "address", text, NAPI_AUTO_LENGTH) &&
              set_int32_property(env, result, "port", ntohs(inet6->sin6_port));
  } else if (address.ss_family == AF_UNIX) {
    const struct sockaddr_un *local = (const struct sockaddr_un *)&address;
    size_t path_offset = offsetof(struct sockaddr_un, sun_path);
    size_t path_length = address_length > path_offset ? address_length - path_offset : 0;
    if (path_length > UNIX_PATH_CAPACITY) path_length = UNIX_PATH_CAPACITY;
    /* A filesystem path is NUL-terminated within the reported length; an abstract name starts
     * with NUL and is exactly as long as reported. */
    if (path_length > 0 && local->sun_path[0] != '\0') {
      path_length = strnlen(local->sun_path, path_length);
    }
    written = written && set_string_property(env, result, "family", "unix", NAPI_AUTO_LENGTH) &&
              set_string_property(env, result, "address", local->sun_path, path_length) &&
              set_int32_property(env, result, "port", 0) &&
              set_string_property(env, result, "path", local->sun_path, path_length);
  } else {
    char message[160];
    snprintf(message, sizeof message,
             "fd %d is a socket of address family %d; prefork handles IPv4, IPv6 and Unix sockets",
             fd, address.ss_family);
    return prefork_throw_errno(env, EAFNOSUPPORT, "getsockname", message);
  }

  if (!written) {
    prefork_throw_last_napi_error(env);
    return NULL;
  }
  return result;
}

/* Reads a string argument into `buffer`; false (with a TypeError pending) when it is not a string. */
/*
 * Copies a string argument into `buffer` (cut to fit, NUL-terminated) and sets `*length` to its
 * whole UTF-8 length in bytes, so that a caller tells a string that did not fit by
 * `*length >= capacity`. N-API cuts a copy before a character that would not fit whole, so the
 * copied length alone can look short enough for a string that is not.
 */
static bool get_string(napi_env env, napi_value value, const char *name, char *buffer,
                       size_t capacity, size_t *length) {
  size_t copied = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, length) != napi_ok ||
      napi_get_value_string_utf8(env, value, buffer, capacity, &copied) != napi_ok) {
    char message[128];
    snprintf(message, sizeof message, "%s must be a string", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  return true;
}

/*
 * listenTcp(host, port, backlog, ipv6Only, deferAccept). `host` must be a numeric address: the
 * TypeScript side maps '' and 'localhost' and validates the options; this side parses the literal
 * with AI_NUMERICHOST so that no name lookup can ever block the event loop.
 */
napi_value prefork_listen_tcp(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t host_length = 0;
  int32_t port, backlog, ipv6_only, defer_accept;
  if (!get_string(env, argv[0], "host", host, sizeof host, &host_length) ||
      !prefork_get_int32(env, argv[1], "port", &port) ||
      !prefork_get_optional_int32(env, argv[2], "backlog", 511, &backlog) ||
      !prefork_get_optional_int32(env, argv[3], "ipv6Only", -1, &ipv6_only) ||
      !prefork_get_optional_int32(env, argv[4], "deferAccept", 0, &defer_accept)) {
    return NULL;
  }
  if (port < 0 || port > 65535) {
    napi_throw_range_error(env, "ERR_SOCKET_BAD_PORT", "port must be an integer from 0 to 65535");
    return NULL;
  }

  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo *found = NULL;
  /* A string that filled the buffer was cut short, so it cannot be a valid literal. */
  if (host_length + 1 >= sizeof host || getaddrinfo(host, NULL, &hints, &found) != 0 ||
      found == NULL) {
    if (found != NULL) freeaddrinfo(found);
    char message[200];
    snprintf(message, sizeof message,
             "'%s' is not a numeric IPv4 or IPv6 address (host names are not resolved)", host);
    return prefork_throw_errno(env, EINVAL, "getaddrinfo", message);
  }
  struct sockaddr_storage address;
  socklen_t address_length = found->ai_addrlen;
  memcpy(&address, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);

  int family = address.ss_family;
  if (family == AF_INET) {
    ((struct sockaddr_in *)&address)->sin_port = htons((uint16_t)port);
  } else {
    ((struct sockaddr_in6 *)&address)->sin6_port = htons((uint16_t)port);
  }

  int fd = prefork_socket(family, SOCK_STREAM, IPPROTO_TCP);
  if (fd < 0) return prefork_throw_errno(env, errno, "socket", NULL);

  /* Without SO_REUSEADDR a restarted pool could not bind while old connections sit in TIME_WAIT. */
  int enabled = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &enabled, sizeof enabled) < 0) {
    return close_and_throw(env, fd, errno, "setsockopt", NULL);
  }

  /* Connections accepted from it inherit TCP_NODELAY on Linux: a child then need not set it on
   * each one (a system call per connection). Where they do not inherit it, children still set it. */
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &enabled, sizeof enabled) < 0) {
    return close_and_throw(env, fd, errno, "setsockopt", NULL);
  }

  if (family == AF_INET6) {
    const struct in6_addr *inet6 = &((struct sockaddr_in6 *)&address)->sin6_addr;
    /* A specific IPv6 address never accepts IPv4 anyway, so V6ONLY only makes that explicit; the
     * wildcard keeps the system's dual-stack default unless asked; and a v4-mapped address would
     * fail to bind with V6ONLY on, so it is left alone too. */
    int v6_only = ipv6_only;
    if (v6_only < 0 && !IN6_IS_ADDR_UNSPECIFIED(inet6) && !IN6_IS_ADDR_V4MAPPED(inet6)) v6_only = 1;
    if (v6_only >= 0) {
      int value = v6_only > 0;
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, sizeof value) < 0) {
        return close_and_throw(env, fd, errno, "setsockopt", NULL);
      }
    }
  }

#ifdef PREFORK_HAVE_DEFER_ACCEPT
  /* Set before listen() so that no connection is queued under the old setting. */
  if (defer_accept > 0 &&
      setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_accept, sizeof defer_accept) < 0) {
    return close_and_throw(env, fd, errno, "setsockopt", NULL);
  }
#endif

  if (bind(fd, (struct sockaddr *)&address, address_length) < 0) {
    return close_and_throw(env, fd, errno, "bind", NULL);
  }
  if (listen(fd, backlog) < 0) return close_and_throw(env, fd, errno, "listen", NULL);

  napi_value result = describe_socket(env, fd);
  if (result == NULL) close(fd);
  return result;
}

/*
 * Decides what to do about a Unix socket path that bind() found taken. Returns 0 when the path may
 * be bound now (a stale socket was removed, or the file vanished meanwhile); otherwise the errno
 * to report, with `syscall` and `message` filled in.
 */
static int clear_unix_path(const char *path, const struct sockaddr_un *address,
                           socklen_t address_length, const char **syscall, char *message,
                           size_t message_capacity) {
  struct stat status;
  if (lstat(path, &status) < 0) {
    if (errno == ENOENT) return 0;
    int error_number = errno;
    *syscall = "lstat";
    snprintf(message, message_capacity, "could not inspect %s: %s", path, strerror(error_number));
    return error_number;
  }
  if (!S_ISSOCK(status.st_mode)) {
    *syscall = "bind";
    snprintf(message, message_capacity, "%s exists and is not a socket; refusing to replace it",
             path);
    return ENOTSOCK;
  }

  /* A socket file outlives its server. Whether anyone still listens is only known by connecting:
   * refused means stale. The probe is non-blocking so that a full backlog cannot stall us; it
   * then reports EAGAIN, which also means "someone listens". */
  int probe = prefork_socket(AF_UNIX, SOCK_STREAM, 0);
  if (probe < 0) {
    int error_number = errno;
    *syscall = "socket";
    snprintf(message, message_capacity, "could not check whether %s is in use: %s", path,
             strerror(error_number));
    return error_number;
  }
  int connect_error = connect(probe, (const struct sockaddr *)address, address_length) < 0 ? errno : 0;
  close(probe);

  if (connect_error == ECONNREFUSED) {
    /* Another server could bind between this unlink and our retry; it then wins and our retry
     * reports EADDRINUSE, which is the truth. */
    if (unlink(path) < 0 && errno != ENOENT) {
      int error_number = errno;
      *syscall = "unlink";
      snprintf(message, message_capacity, "could not remove stale socket %s: %s", path,
               strerror(error_number));
      return error_number;
    }
    return 0;
  }
  if (connect_error == 0 || connect_error == EAGAIN || connect_error == EINPROGRESS) {
    *syscall = "bind";
    snprintf(message, message_capacity, "another process is listening on %s", path);
    return EADDRINUSE;
  }
  *syscall = "connect";
  snprintf(message, message_capacity, "could not check whether %s is in use: %s", path,
           strerror(connect_error));
  return connect_error;
}

/* listenUnix(path, backlog, mode): mode -1 (or null) keeps what the umask gave. */
napi_value prefork_listen_unix(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));

  char path[UNIX_PATH_CAPACITY + 1];
  size_t path_length = 0;
  int32_t backlog, mode;
  if (!get_string(env, argv[0], "path", path, sizeof path, &path_length) ||
      !prefork_get_optional_int32(env, argv[1], "backlog", 511, &backlog) ||
      !prefork_get_optional_int32(env, argv[2], "mode", -1, &mode)) {
    return NULL;
  }
  if (path_length == 0) return prefork_throw_errno(env, EINVAL, "bind", "the socket path is empty");
  /* One byte is kept for the terminating NUL of a filesystem path. `path_length` is the whole
   * string's length in bytes: a longer path is refused, never bound cut short. */
  if (path_length >= UNIX_PATH_CAPACITY) {
    char message[200];
    snprintf(message, sizeof message,
             "socket path '%.40s...' is too long: Unix socket paths are limited to %zu bytes, this one has %zu",
             path, UNIX_PATH_CAPACITY - 1, path_length);
    return prefork_throw_errno(env, ENAMETOOLONG, "bind", message);
  }
  /* A leading NUL would make a Linux abstract name, whose length is part of the name: Node 20's
   * net.connect pads it to the full sun_path while other programs use the exact length, so
   * clients could not be relied on to reach it. Any other NUL would silently cut the path. */
  if (memchr(path, '\0', path_length) != NULL) {
    return prefork_throw_errno(env, EINVAL, "bind",
                               "the socket path contains a NUL byte; abstract socket names are not supported");
  }

  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  memcpy(address.sun_path, path, path_length);
  socklen_t address_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_length + 1);

  int fd = prefork_socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return prefork_throw_errno(env, errno, "socket", NULL);

  int bound = bind(fd, (struct sockaddr *)&address, address_length);
  if (bound < 0 && errno == EADDRINUSE) {
    const char *syscall = "bind";
    char message[UNIX_PATH_CAPACITY + 160];
    int error_number = clear_unix_path(path, &address, address_length, &syscall, message,
                                       sizeof message);
    if (error_number != 0) return close_and_throw(env, fd, error_number, syscall, message);
    bound = bind(fd, (struct sockaddr *)&address, address_length);
  }
  if (bound < 0) return close_and_throw(env, fd, errno, "bind", NULL);

  /* chmod before listen(): nobody can connect before the mode is right. Not following a
   * symlink: had someone swapped the new socket for a link meanwhile, chmod() would change the
   * mode of whatever it points to, with the parent's privileges; this fails instead. */
  if (mode >= 0 && fchmodat(AT_FDCWD, path, (mode_t)mode, AT_SYMLINK_NOFOLLOW) < 0) {
    int error_number = errno;
    unlink(path);
    return close_and_throw(env, fd, error_number, "chmod", NULL);
  }
  if (listen(fd, backlog) < 0) {
    int error_number = errno;
    unlink(path);
    return close_and_throw(env, fd, error_number, "listen", NULL);
  }

  napi_value result = describe_socket(env, fd);
  if (result == NULL) {
    unlink(path);
    close(fd);
  }
  return result;
}

/*
 * Fails unless `fd` is a listening stream socket; the message says which of the three it is not,
 * because "Invalid argument" alone would send the reader hunting through systemd unit files.
 */
static bool check_listening_stream(napi_env env, int fd) {
  char message[200];
  int type = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0) {
    int error_number = errno;
    if (error_number == ENOTSOCK) {
      snprintf(message, sizeof message, "fd %d is not a socket", fd);
    } else if (error_number == EBADF) {
      snprintf(message, sizeof message, "fd %d is not an open file descriptor", fd);
    } else {
      snprintf(message, sizeof message, "could not inspect fd %d: %s", fd, strerror(error_number));
    }
    prefork_throw_errno(env, error_number, "getsockopt", message);
    return false;
  }
  if (type != SOCK_STREAM) {
    snprintf(message, sizeof message,
             "fd %d is not a stream socket (SO_TYPE %d); a listening TCP or Unix stream socket is needed",
             fd, type);
    prefork_throw_errno(env, EINVAL, "getsockopt", message);
    return false;
  }
  int accepting = 0;
  length = sizeof accepting;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) < 0) {
    prefork_throw_errno(env, errno, "getsockopt", NULL);
    return false;
  }
  if (!accepting) {
    snprintf(message, sizeof message,
             "fd %d is a stream socket that is not listening (SO_ACCEPTCONN is off)", fd);
    prefork_throw_errno(env, EINVAL, "getsockopt", message);
    return false;
  }
  return true;
}

/* adoptListener(fd) */
napi_value prefork_adopt_listener(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  if (!check_listening_stream(env, fd)) return NULL;

  int error_number = prefork_update_nonblocking(fd, true);
  if (error_number != 0) return prefork_throw_errno(env, error_number, "fcntl", NULL);
  error_number = prefork_update_cloexec(fd, true);
  if (error_number != 0) return prefork_throw_errno(env, error_number, "fcntl", NULL);
  return describe_socket(env, fd);
}

/* listenerInfo(fd): the ListenerInfo of any socket, plus `listening` (SO_ACCEPTCONN). */
napi_value prefork_listener_info(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;

  napi_value result = describe_socket(env, fd);
  if (result == NULL) return NULL;
  int accepting = 0;
  socklen_t length = sizeof accepting;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) < 0) {
    return prefork_throw_errno(env, errno, "getsockopt", NULL);
  }
  napi_value listening;
  PREFORK_CALL(env, napi_get_boolean(env, accepting != 0, &listening));
  PREFORK_CALL(env, napi_set_named_property(env, result, "listening", listening));
  return result;
}

/*
 * setNotsentLowat(fd, bytes): TCP_NOTSENT_LOWAT on a TCP socket. Set on a listener, it holds for
 * the connections accepted from it (Linux copies it into each one): a write then takes no more
 * than about `bytes` that the peer has not yet received, and the rest of an answer waits in the
 * child's own memory, where a shared buffer costs nothing, instead of in the kernel's. Returns
 * false where the system has no such option.
 */
napi_value prefork_set_notsent_lowat(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, bytes;
  if (!prefork_get_int32(env, argv[0], "fd", &fd) || !prefork_get_int32(env, argv[1], "bytes", &bytes)) {
    return NULL;
  }
  /* `bytes` is checked (0 to 2^31 - 1) on the TypeScript side, as listenTcp's options are. */
  bool set = false;
#ifdef PREFORK_HAVE_NOTSENT_LOWAT
  if (setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof bytes) < 0) {
    return prefork_throw_errno(env, errno, "setsockopt", NULL);
  }
  set = true;
#else
  (void)fd;
#endif
  napi_value result;
  PREFORK_CALL(env, napi_get_boolean(env, set, &result));
  return result;
}

/* notsentLowat(fd): the socket's TCP_NOTSENT_LOWAT (0: the system's default); -1 where unknown. */
napi_value prefork_notsent_lowat(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  int32_t bytes = -1;
#ifdef PREFORK_HAVE_NOTSENT_LOWAT
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &value, &length) == 0) bytes = value;
#else
  (void)fd;
#endif
  napi_value result;
  PREFORK_CALL(env, napi_create_int32(env, bytes, &result));
  return result;
}

/* tcpNoDelay(fd): whether TCP_NODELAY is on for the socket; false where it is not TCP. */
napi_value prefork_tcp_no_delay(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!prefork_get_fd_argument(env, info, &fd)) return NULL;
  int value = 0;
  socklen_t length = sizeof value;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, &length) < 0) {
    if (errno == EBADF) return prefork_throw_errno(env, errno, "getsockopt", NULL);
    value = 0;
  }
  napi_value result;
  PREFORK_CALL(env, napi_get_boolean(env, value != 0, &result));
  return result;
}
