/*
 * The child's lifeline: a thread that notices the parent's death even while the child's event loop
 * is stuck in user code (a handler spinning in a loop never reads its control channel's EOF).
 *
 * It polls getppid() ten times a second. Once the parent is gone it shuts the listening sockets
 * down at once, so that a new server can bind their addresses although this child still holds
 * them, then gives the child `grace_ms` to finish its connections and exit by itself, and kills it
 * if it has not. A healthy child exits long before: its event loop sees the channel close.
 */
#include "prefork.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define LIFELINE_MAX_FDS 64
#define LIFELINE_POLL_NS (100 * 1000 * 1000)

static struct {
  pid_t parent;
  int fds[LIFELINE_MAX_FDS];
  int count;
  uint32_t grace_ms;
} lifeline;

static pthread_once_t lifeline_once = PTHREAD_ONCE_INIT;
static int lifeline_error;

static void sleep_ms(uint32_t ms) {
  struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

static void *lifeline_run(void *unused) {
  (void)unused;
  const struct timespec tick = {.tv_sec = 0, .tv_nsec = LIFELINE_POLL_NS};
  while (getppid() == lifeline.parent) nanosleep(&tick, NULL);
  /* The sockets are shared with the other children; shutting them down (not closing: the fd
   * stays ours, so it cannot be reused under the event loop) stops every accept on them. */
  for (int i = 0; i < lifeline.count; i++) shutdown(lifeline.fds[i], SHUT_RD);
  sleep_ms(lifeline.grace_ms);
  kill(getpid(), SIGKILL);
  return NULL;
}

static void lifeline_start(void) {
  pthread_attr_t attributes;
  pthread_t thread;
  lifeline_error = pthread_attr_init(&attributes);
  if (lifeline_error != 0) return;
  pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
  lifeline_error = pthread_create(&thread, &attributes, lifeline_run, NULL);
  pthread_attr_destroy(&attributes);
}

/* startLifeline(parentPid, listenerFds, graceMs): once per process; later calls do nothing. */
napi_value prefork_start_lifeline(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t parent, grace;
  uint32_t length;
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "startLifeline(parentPid, listenerFds, graceMs): three arguments expected");
    return NULL;
  }
  if (!prefork_get_int32(env, argv[0], "parentPid", &parent) || !prefork_get_int32(env, argv[2], "graceMs", &grace)) return NULL;
  PREFORK_CALL(env, napi_get_array_length(env, argv[1], &length));
  if (parent < 1 || grace < 0 || length > LIFELINE_MAX_FDS) {
    napi_throw_range_error(env, NULL, "startLifeline: parentPid must be positive, graceMs non-negative, and at most 64 fds");
    return NULL;
  }
  if (lifeline.parent == 0) {
    for (uint32_t i = 0; i < length; i++) {
      napi_value item;
      int32_t fd;
      PREFORK_CALL(env, napi_get_element(env, argv[1], i, &item));
      if (!prefork_get_int32(env, item, "fd", &fd)) return NULL;
      lifeline.fds[i] = fd;
    }
    lifeline.count = (int)length;
    lifeline.grace_ms = (uint32_t)grace;
    lifeline.parent = (pid_t)parent;
  }
  pthread_once(&lifeline_once, lifeline_start);
  if (lifeline_error != 0) return prefork_throw_errno(env, lifeline_error, "pthread_create", NULL);
  return NULL;
}
