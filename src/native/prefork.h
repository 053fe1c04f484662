/*
 * Shared declarations of the prefork addon.
 *
 * The addon is split by job: prefork.c registers the module and holds the error and argument
 * helpers, listener.c opens and describes listening sockets, accept.c holds the accept hot path and
 * the small fd utilities, watcher.c the readability watcher that the parent polls listeners with.
 */
#ifndef PREFORK_H
#define PREFORK_H

/* For accept4(), SOCK_CLOEXEC and the Linux-only errnos accept() can report. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <node_api.h>

/*
 * Fast paths of the systems we know, and the POSIX fallbacks everywhere else (macOS, other BSDs).
 * Defining PREFORK_PORTABLE forces the fallbacks on Linux too, so that the code a Mac user
 * compiles is code our tests have run (`npm run test:portable`).
 *
 * PREFORK_HAVE_SOCK_FLAGS  accept4(), and SOCK_NONBLOCK | SOCK_CLOEXEC in socket()/socketpair():
 *                          one call; elsewhere fcntl() follows the call.
 * PREFORK_HAVE_TCP_INFO    the accept queue of a TCP listener from TCP_INFO (Linux aliases two
 *                          fields to it on a LISTEN socket); elsewhere the queue is unknown.
 * PREFORK_HAVE_DEFER_ACCEPT  TCP_DEFER_ACCEPT; elsewhere `deferAccept` is accepted and has no effect.
 * PREFORK_HAVE_SCHED_BATCH  SCHED_BATCH for the parent's main thread (sched.c); elsewhere the
 *                          parent's scheduling is left as it is.
 * PREFORK_HAVE_NOTSENT_LOWAT  TCP_NOTSENT_LOWAT (Linux, macOS: a socket option, not a fast path, so
 *                          the portable build keeps it); elsewhere `notsentLowat` has no effect.
 * PREFORK_SEND_FLAGS       MSG_NOSIGNAL where it exists; elsewhere 0, which is safe because Node
 *                          ignores SIGPIPE in every process it runs.
 */
#if !defined(PREFORK_PORTABLE) && (defined(__linux__) || defined(__FreeBSD__)) && defined(SOCK_CLOEXEC)
#define PREFORK_HAVE_SOCK_FLAGS 1
#endif
#if !defined(PREFORK_PORTABLE) && defined(__linux__)
#define PREFORK_HAVE_TCP_INFO 1
#define PREFORK_HAVE_DEFER_ACCEPT 1
#define PREFORK_HAVE_SOCKET_FILTER 1
#define PREFORK_HAVE_PAGE 1
#define PREFORK_HAVE_SCHED_BATCH 1
#endif
#if defined(__linux__) || defined(__APPLE__)
#define PREFORK_HAVE_NOTSENT_LOWAT 1
#endif
#if !defined(PREFORK_PORTABLE) && defined(MSG_NOSIGNAL)
#define PREFORK_SEND_FLAGS MSG_NOSIGNAL
#else
#define PREFORK_SEND_FLAGS 0
#endif

/*
 * Bails out of a napi_callback when a N-API call fails. N-API leaves an exception pending in most
 * failure cases; when it did not, one is raised so that JS never sees a silent `undefined`.
 */
#define PREFORK_CALL(env, call)                                                                    \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      prefork_throw_last_napi_error(env);                                                          \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/* Per-environment state, kept as N-API instance data so that worker threads each get their own. */
typedef struct prefork_instance {
  napi_ref watcher_constructor;
} prefork_instance;

/* Raises a JS exception for the last failed N-API call unless one is already pending. */
void prefork_throw_last_napi_error(napi_env env);

/*
 * Throws an Error whose `code` is the errno name ('EBADF'), `errno` the number and `syscall` the
 * failed call. `message` replaces the errno's standard text when given (to say what was wrong
 * in our terms); the result always reads "<syscall> <CODE>: <text>". Returns NULL for
 * `return prefork_throw_errno(...)` in callbacks.
 */
napi_value prefork_throw_errno(napi_env env, int error_number, const char *syscall,
                               const char *message);

/* Creates (without throwing) the same Error that prefork_throw_errno throws. */
napi_value prefork_create_errno_error(napi_env env, int error_number, const char *syscall,
                                      const char *message);

/* Reads an int32 argument; throws a TypeError naming `name` and returns false when it is not one. */
bool prefork_get_int32(napi_env env, napi_value value, const char *name, int32_t *result);

/* Reads the one argument `fd` of a callback taking only an fd; false after throwing. */
bool prefork_get_fd_argument(napi_env env, napi_callback_info info, int32_t *fd);

/* Reads an optional int32 argument: `undefined` and `null` give `fallback`. */
bool prefork_get_optional_int32(napi_env env, napi_value value, const char *name, int32_t fallback,
                                int32_t *result);

/* Turns FD_CLOEXEC on or off; returns 0 or the errno. */
int prefork_update_cloexec(int fd, bool on);

/* Turns O_NONBLOCK on or off; returns 0 or the errno. */
int prefork_update_nonblocking(int fd, bool on);

/* socket(2) whose fd is close-on-exec and non-blocking; -1 with errno set on failure. */
int prefork_socket(int domain, int type, int protocol);

/* socketpair(2) whose fds are close-on-exec and non-blocking; -1 with errno set on failure. */
int prefork_socketpair_fds(int domain, int type, int fds[2]);

/* accept(2) of one connection, close-on-exec and (when asked) non-blocking; EINTR is retried.
 * -1 with errno set when it took nothing. */
int prefork_accept_fd(int listener, bool nonblocking);

/* listener.c */
napi_value prefork_listen_tcp(napi_env env, napi_callback_info info);
napi_value prefork_listen_unix(napi_env env, napi_callback_info info);
napi_value prefork_adopt_listener(napi_env env, napi_callback_info info);
napi_value prefork_listener_info(napi_env env, napi_callback_info info);
napi_value prefork_set_notsent_lowat(napi_env env, napi_callback_info info);
napi_value prefork_notsent_lowat(napi_env env, napi_callback_info info);

/* accept.c */
napi_value prefork_accept(napi_env env, napi_callback_info info);
napi_value prefork_accept_queue_length(napi_env env, napi_callback_info info);
napi_value prefork_readable(napi_env env, napi_callback_info info);
napi_value prefork_hold_new_connections(napi_env env, napi_callback_info info);
napi_value prefork_pending_handshakes(napi_env env, napi_callback_info info);
napi_value prefork_create_page(napi_env env, napi_callback_info info);
napi_value prefork_map_page(napi_env env, napi_callback_info info);
napi_value prefork_bytes_acked(napi_env env, napi_callback_info info);
napi_value prefork_tcp_no_delay(napi_env env, napi_callback_info info);
napi_value prefork_shutdown_listener(napi_env env, napi_callback_info info);
napi_value prefork_hold_new_connections(napi_env env, napi_callback_info info);
napi_value prefork_socketpair(napi_env env, napi_callback_info info);
napi_value prefork_read(napi_env env, napi_callback_info info);
napi_value prefork_write(napi_env env, napi_callback_info info);
napi_value prefork_accept_queue(napi_env env, napi_callback_info info);
napi_value prefork_accept_and_close(napi_env env, napi_callback_info info);
napi_value prefork_set_cloexec(napi_env env, napi_callback_info info);
napi_value prefork_set_nonblocking(napi_env env, napi_callback_info info);
napi_value prefork_close(napi_env env, napi_callback_info info);

/* watcher.c */
napi_status prefork_define_watcher_class(napi_env env, napi_value *constructor);
napi_value prefork_create_watcher(napi_env env, napi_callback_info info);

/* lifeline.c */
napi_value prefork_start_lifeline(napi_env env, napi_callback_info info);

/* sched.c */
napi_value prefork_sched_policy(napi_env env, napi_callback_info info);
napi_value prefork_set_sched_policy(napi_env env, napi_callback_info info);

#endif
