/*
 * The readability watcher: how the parent learns that a connection is waiting without taking it.
 *
 * A uv_poll_t in the calling thread's own loop, level-triggered like all libuv I/O watchers on
 * Linux: while connections wait and the watcher is started, the callback fires on every loop
 * iteration, so the JS side must either get them accepted or stop() the watcher.
 *
 * Ownership. The struct has two owners and is freed when both have let go:
 *   - the libuv handle, from uv_poll_init() until its close callback has run;
 *   - the JS side (the callback reference, the async context and the wrap reference), released
 *     by close(), or by the wrap's finalizer when the object is collected without close().
 * close() removes the wrap, so afterwards the object no longer reaches the struct and every
 * method sees "closed" instead of freed memory.
 *
 * While started, the wrap reference is strong: an active handle keeps working even when JS has
 * dropped the object, as Node's own handles do. Stopped, it is weak, and a collected watcher
 * closes itself. At environment teardown (a worker thread ending) an async cleanup hook closes
 * the handle, because a worker's loop must have no open handles left when it is closed.
 */
#include "prefork.h"

#include <errno.h>
#include <stdlib.h>

#include <uv.h>

typedef struct watcher {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref self;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  bool started;
  /* UV_READABLE and/or UV_WRITABLE, as last passed to start(). */
  int events;
  bool handle_closing;
  bool handle_closed;
  bool javascript_released;
  /* napi_make_callback is running: the async context must outlive it. */
  bool in_callback;
  bool destroy_context_after_callback;
} watcher;

static void free_when_unowned(watcher *state) {
  if (state->handle_closed && state->javascript_released && state->async_context == NULL) {
    free(state);
  }
}

static void on_handle_closed(uv_handle_t *handle) {
  watcher *state = handle->data;
  state->handle_closed = true;
  if (state->cleanup_hook != NULL) {
    napi_remove_async_cleanup_hook(state->cleanup_hook);
    state->cleanup_hook = NULL;
  }
  free_when_unowned(state);
}

static void close_handle(watcher *state) {
  if (state->handle_closing) return;
  state->handle_closing = true;
  state->started = false;
  uv_close((uv_handle_t *)&state->poll, on_handle_closed);
}

static void release_javascript(watcher *state) {
  if (state->javascript_released) return;
  state->javascript_released = true;
  napi_env env = state->env;
  if (state->callback != NULL) {
    napi_delete_reference(env, state->callback);
    state->callback = NULL;
  }
  if (state->self != NULL) {
    napi_delete_reference(env, state->self);
    state->self = NULL;
  }
  if (state->async_context != NULL) {
    if (state->in_callback) {
      state->destroy_context_after_callback = true;
    } else {
      napi_async_destroy(env, state->async_context);
      state->async_context = NULL;
    }
  }
  free_when_unowned(state);
}

/* The object was collected without close(); it cannot have been started (the reference would
 * have been strong) unless the whole environment is being torn down. */
static void finalize_watcher(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watcher *state = data;
  close_handle(state);
  release_javascript(state);
}

/* Node waits for napi_remove_async_cleanup_hook, which the close callback calls. */
static void on_environment_teardown(napi_async_cleanup_hook_handle handle, void *data) {
  (void)handle;
  close_handle(data);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  watcher *state = handle->data;
  if (!state->started || state->callback == NULL) return;
  napi_env env = state->env;

  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback = NULL, receiver = NULL;
  napi_get_reference_value(env, state->callback, &callback);
  napi_get_reference_value(env, state->self, &receiver);

  /* On POLLERR libuv has already stopped the handle; say so before the callback runs, so that
   * the JS side sees `active` false and may start() again. */
  if (status < 0) {
    state->started = false;
    napi_reference_unref(env, state->self, NULL);
  }

  if (callback != NULL && receiver != NULL) {
    /* The callback learns which events fired (1 readable, 2 writable; both on an error). */
    napi_value argument;
    if (napi_create_int32(env, status < 0 ? (UV_READABLE | UV_WRITABLE) : events, &argument) != napi_ok) {
      napi_close_handle_scope(env, scope);
      return;
    }
    state->in_callback = true;
    napi_status call_status =
        napi_make_callback(env, state->async_context, receiver, callback, 1, &argument, NULL);
    state->in_callback = false;
    if (call_status == napi_pending_exception) {
      /* As with any Node callback, a throw becomes an 'uncaughtException'. */
      napi_value exception;
      if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
        napi_fatal_exception(env, exception);
      }
    }
  }

  if (state->destroy_context_after_callback) {
    state->destroy_context_after_callback = false;
    napi_async_destroy(env, state->async_context);
    state->async_context = NULL;
  }
  napi_close_handle_scope(env, scope);
}

/* The watcher behind `this`, or NULL once close() has run. Never throws. */
static watcher *unwrap_watcher(napi_env env, napi_callback_info info) {
  napi_value this_value;
  void *data = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, &this_value, NULL) != napi_ok ||
      napi_unwrap(env, this_value, &data) != napi_ok) {
    return NULL;
  }
  return data;
}

/* start(events = 1): 1 readable, 2 writable, 3 both. Starting again with other events switches them. */
static napi_value start_watcher(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], this_value;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, &this_value, NULL) != napi_ok ||
      napi_unwrap(env, this_value, &data) != napi_ok) {
    data = NULL;
  }
  watcher *state = data;
  if (state == NULL || state->handle_closing) {
    napi_throw_error(env, "ERR_WATCHER_CLOSED", "the watcher is closed and cannot be started again");
    return NULL;
  }
  int32_t events = UV_READABLE;
  if (argc >= 1 && !prefork_get_optional_int32(env, argv[0], "events", UV_READABLE, &events)) return NULL;
  events &= UV_READABLE | UV_WRITABLE;
  if (events == 0) events = UV_READABLE;
  if (state->started && state->events == events) return NULL;
  int error = uv_poll_start(&state->poll, events, on_poll);
  if (error < 0) return prefork_throw_errno(env, -error, "uv_poll_start", NULL);
  state->events = events;
  if (!state->started) {
    state->started = true;
    napi_reference_ref(env, state->self, NULL);
  }
  return NULL;
}

static napi_value stop_watcher(napi_env env, napi_callback_info info) {
  watcher *state = unwrap_watcher(env, info);
  if (state == NULL || state->handle_closing || !state->started) return NULL;
  uv_poll_stop(&state->poll);
  state->started = false;
  napi_reference_unref(env, state->self, NULL);
  return NULL;
}

static napi_value close_watcher(napi_env env, napi_callback_info info) {
  napi_value this_value;
  void *data = NULL;
  PREFORK_CALL(env, napi_get_cb_info(env, info, NULL, NULL, &this_value, NULL));
  if (napi_remove_wrap(env, this_value, &data) != napi_ok || data == NULL) return NULL;
  watcher *state = data;
  close_handle(state);
  release_javascript(state);
  return NULL;
}

static napi_value ref_watcher(napi_env env, napi_callback_info info) {
  watcher *state = unwrap_watcher(env, info);
  if (state != NULL && !state->handle_closing) uv_ref((uv_handle_t *)&state->poll);
  return NULL;
}

static napi_value unref_watcher(napi_env env, napi_callback_info info) {
  watcher *state = unwrap_watcher(env, info);
  if (state != NULL && !state->handle_closing) uv_unref((uv_handle_t *)&state->poll);
  return NULL;
}

static napi_value get_active(napi_env env, napi_callback_info info) {
  watcher *state = unwrap_watcher(env, info);
  napi_value result;
  PREFORK_CALL(env, napi_get_boolean(env, state != NULL && state->started, &result));
  return result;
}

/*
 * new Watcher(fd, onReadable), reached only through createWatcher(). Every step that can fail
 * comes before the wrap where possible; after uv_poll_init a failure must go through uv_close,
 * so the struct is then released like a closed watcher.
 */
static napi_value construct_watcher(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], this_value;
  int32_t fd;
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, &this_value, NULL));
  if (!prefork_get_int32(env, argv[0], "fd", &fd)) return NULL;
  napi_valuetype callback_type = napi_undefined;
  PREFORK_CALL(env, napi_typeof(env, argv[1], &callback_type));
  if (callback_type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onReadable must be a function");
    return NULL;
  }
  uv_loop_t *loop = NULL;
  PREFORK_CALL(env, napi_get_uv_event_loop(env, &loop));

  watcher *state = calloc(1, sizeof *state);
  if (state == NULL) return prefork_throw_errno(env, ENOMEM, "calloc", NULL);
  state->env = env;

  napi_value resource_name;
  if (napi_create_reference(env, argv[1], 1, &state->callback) != napi_ok ||
      napi_create_string_utf8(env, "PreforkWatcher", NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_async_init(env, this_value, resource_name, &state->async_context) != napi_ok) {
    prefork_throw_last_napi_error(env);
    state->handle_closed = true;
    release_javascript(state);
    return NULL;
  }

  int error = uv_poll_init(loop, &state->poll, fd);
  if (error < 0) {
    state->handle_closed = true;
    release_javascript(state);
    return prefork_throw_errno(env, -error, "uv_poll_init", NULL);
  }
  state->poll.data = state;

  if (napi_add_async_cleanup_hook(env, on_environment_teardown, state, &state->cleanup_hook) !=
          napi_ok ||
      napi_wrap(env, this_value, state, finalize_watcher, NULL, &state->self) != napi_ok) {
    prefork_throw_last_napi_error(env);
    close_handle(state);
    release_javascript(state);
    return NULL;
  }
  return this_value;
}

napi_status prefork_define_watcher_class(napi_env env, napi_value *constructor) {
  const napi_property_descriptor properties[] = {
      {"start", NULL, start_watcher, NULL, NULL, NULL, napi_default_method, NULL},
      {"stop", NULL, stop_watcher, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, close_watcher, NULL, NULL, NULL, napi_default_method, NULL},
      {"ref", NULL, ref_watcher, NULL, NULL, NULL, napi_default_method, NULL},
      {"unref", NULL, unref_watcher, NULL, NULL, NULL, napi_default_method, NULL},
      {"active", NULL, NULL, get_active, NULL, NULL, napi_configurable, NULL},
  };
  return napi_define_class(env, "Watcher", NAPI_AUTO_LENGTH, construct_watcher, NULL,
                           sizeof properties / sizeof properties[0], properties, constructor);
}

/* createWatcher(fd, onReadable) */
napi_value prefork_create_watcher(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  prefork_instance *instance = NULL;
  napi_value constructor, result;
  PREFORK_CALL(env, napi_get_instance_data(env, (void **)&instance));
  PREFORK_CALL(env, napi_get_reference_value(env, instance->watcher_constructor, &constructor));
  PREFORK_CALL(env, napi_new_instance(env, constructor, 2, argv, &result));
  return result;
}
