/*
 * The prefork addon: what Node's `net` module cannot do for a preforking server.
 *
 * The parent must watch a listening socket for readability without accepting from it, and each
 * child must accept from a shared, inherited fd exactly when told to, without blocking. Everything
 * here is a thin, allocation-free wrapper over the system calls; policy lives in TypeScript.
 */
#include "prefork.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

void prefork_throw_last_napi_error(napi_env env) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info *error_info = NULL;
  napi_get_last_error_info(env, &error_info);
  const char *message = error_info != NULL && error_info->error_message != NULL
                            ? error_info->error_message
                            : "unknown N-API failure";
  napi_throw_error(env, NULL, message);
}

napi_value prefork_create_errno_error(napi_env env, int error_number, const char *syscall,
                                      const char *message) {
  /* libuv names and describes errnos exactly as Node's own system errors do ('EADDRINUSE',
   * 'address already in use'), so errors from the addon and from `net` read alike. The _r
   * variants never allocate, unlike uv_err_name() for unknown codes. */
  char name[64];
  char text[256];
  uv_err_name_r(-error_number, name, sizeof name);
  if (message == NULL) {
    uv_strerror_r(-error_number, text, sizeof text);
    message = text;
  }
  char full_message[768];
  snprintf(full_message, sizeof full_message, "%s %s: %s", syscall, name, message);

  napi_value code_value, message_value, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_value) != napi_ok ||
      napi_create_string_utf8(env, full_message, NAPI_AUTO_LENGTH, &message_value) != napi_ok ||
      napi_create_error(env, code_value, message_value, &error) != napi_ok) {
    return NULL;
  }
  /* Negative, like `errno` on Node's own system errors, so util.getSystemErrorName() works. */
  if (napi_create_int32(env, -error_number, &errno_value) == napi_ok) {
    napi_set_named_property(env, error, "errno", errno_value);
  }
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok) {
    napi_set_named_property(env, error, "syscall", syscall_value);
  }
  return error;
}

napi_value prefork_throw_errno(napi_env env, int error_number, const char *syscall,
                               const char *message) {
  napi_value error = prefork_create_errno_error(env, error_number, syscall, message);
  if (error == NULL) {
    prefork_throw_last_napi_error(env);
  } else {
    napi_throw(env, error);
  }
  return NULL;
}

bool prefork_get_int32(napi_env env, napi_value value, const char *name, int32_t *result) {
  /* napi_get_value_int32 already rejects non-numbers; one call keeps the hot path cheap. */
  if (napi_get_value_int32(env, value, result) != napi_ok) {
    char message[128];
    snprintf(message, sizeof message, "%s must be an integer", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  return true;
}

bool prefork_get_fd_argument(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    prefork_throw_last_napi_error(env);
    return false;
  }
  return prefork_get_int32(env, argv[0], "fd", fd);
}

bool prefork_get_optional_int32(napi_env env, napi_value value, const char *name, int32_t fallback,
                                int32_t *result) {
  napi_valuetype type = napi_undefined;
  if (napi_typeof(env, value, &type) == napi_ok && (type == napi_undefined || type == napi_null)) {
    *result = fallback;
    return true;
  }
  return prefork_get_int32(env, value, name, result);
}

static void finalize_instance(napi_env env, void *data, void *hint) {
  (void)hint;
  prefork_instance *instance = data;
  if (instance->watcher_constructor != NULL) napi_delete_reference(env, instance->watcher_constructor);
  free(instance);
}

/* `features`: which fast paths of prefork.h this build compiled, so that callers and tests can
 * tell the Linux build from the portable one. */
static napi_status create_features(napi_env env, napi_value *result) {
  static const struct {
    const char *name;
    bool on;
  } flags[] = {
#ifdef PREFORK_HAVE_SOCK_FLAGS
      {"sockFlags", true},
#else
      {"sockFlags", false},
#endif
#ifdef PREFORK_HAVE_TCP_INFO
      {"acceptQueue", true},
#else
      {"acceptQueue", false},
#endif
#ifdef PREFORK_HAVE_DEFER_ACCEPT
      {"deferAccept", true},
#else
      {"deferAccept", false},
#endif
#ifdef PREFORK_HAVE_NOTSENT_LOWAT
      {"notsentLowat", true},
#else
      {"notsentLowat", false},
#endif
#ifdef PREFORK_HAVE_SOCKET_FILTER
      {"holdNewConnections", true},
#else
      {"holdNewConnections", false},
#endif
#ifdef PREFORK_HAVE_PAGE
      {"pages", true},
#else
      {"pages", false},
#endif
#ifdef PREFORK_HAVE_SCHED_BATCH
      {"schedBatch", true},
#else
      {"schedBatch", false},
#endif
#ifdef PREFORK_PORTABLE
      {"portable", true},
#else
      {"portable", false},
#endif
  };
  napi_status status = napi_create_object(env, result);
  for (size_t i = 0; status == napi_ok && i < sizeof flags / sizeof flags[0]; i++) {
    napi_value value;
    status = napi_get_boolean(env, flags[i].on, &value);
    if (status == napi_ok) status = napi_set_named_property(env, *result, flags[i].name, value);
  }
  return status;
}

NAPI_MODULE_INIT() {
  prefork_instance *instance = calloc(1, sizeof *instance);
  if (instance == NULL) {
    napi_throw_error(env, NULL, "prefork: out of memory while loading the addon");
    return NULL;
  }
  if (napi_set_instance_data(env, instance, finalize_instance, NULL) != napi_ok) {
    free(instance);
    prefork_throw_last_napi_error(env);
    return NULL;
  }

  napi_value watcher_constructor;
  PREFORK_CALL(env, prefork_define_watcher_class(env, &watcher_constructor));
  PREFORK_CALL(env, napi_create_reference(env, watcher_constructor, 1, &instance->watcher_constructor));

  const napi_property_descriptor functions[] = {
      {"listenTcp", NULL, prefork_listen_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenUnix", NULL, prefork_listen_unix, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adoptListener", NULL, prefork_adopt_listener, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listenerInfo", NULL, prefork_listener_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNotsentLowat", NULL, prefork_set_notsent_lowat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notsentLowat", NULL, prefork_notsent_lowat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"accept", NULL, prefork_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptQueueLength", NULL, prefork_accept_queue_length, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptQueue", NULL, prefork_accept_queue, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readable", NULL, prefork_readable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"shutdownListener", NULL, prefork_shutdown_listener, NULL, NULL, NULL, napi_enumerable, NULL},
      {"holdNewConnections", NULL, prefork_hold_new_connections, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pendingHandshakes", NULL, prefork_pending_handshakes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createPage", NULL, prefork_create_page, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapPage", NULL, prefork_map_page, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bytesAcked", NULL, prefork_bytes_acked, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpNoDelay", NULL, prefork_tcp_no_delay, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketpair", NULL, prefork_socketpair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"read", NULL, prefork_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, prefork_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"acceptAndClose", NULL, prefork_accept_and_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setCloexec", NULL, prefork_set_cloexec, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNonblocking", NULL, prefork_set_nonblocking, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, prefork_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createWatcher", NULL, prefork_create_watcher, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startLifeline", NULL, prefork_start_lifeline, NULL, NULL, NULL, napi_enumerable, NULL},
      {"schedPolicy", NULL, prefork_sched_policy, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSchedPolicy", NULL, prefork_set_sched_policy, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  PREFORK_CALL(env, napi_define_properties(env, exports, sizeof functions / sizeof functions[0],
                                           functions));

  napi_value features;
  PREFORK_CALL(env, create_features(env, &features));
  PREFORK_CALL(env, napi_set_named_property(env, exports, "features", features));
  return exports;
}
