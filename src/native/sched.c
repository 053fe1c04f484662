/*
 * Scheduling policies (Linux): the parent's main thread runs as SCHED_BATCH, and each child puts
 * every thread of its own back to SCHED_OTHER before any user code (a child inherits the parent's
 * policy). A woken SCHED_BATCH thread gets its fair share of CPU time as before, but does not
 * preempt the thread running on its CPU: the parent's wake-ups (a new connection, a child's report)
 * wait for a busy child to block instead of cutting into it, and an idle CPU runs the parent at
 * once as before. Elsewhere the functions say so (ENOSYS), and `features.schedBatch` is false.
 */
#include "prefork.h"

#include <errno.h>
#include <string.h>

#ifdef PREFORK_HAVE_SCHED_BATCH
#include <dirent.h>
#include <sched.h>
#include <stdlib.h>

static const struct {
  const char *name;
  int policy;
} policies[] = {
    {"other", SCHED_OTHER}, {"batch", SCHED_BATCH}, {"idle", SCHED_IDLE}, {"fifo", SCHED_FIFO}, {"rr", SCHED_RR},
};

static const char *policy_name(int policy) {
  for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
    if (policies[i].policy == policy) return policies[i].name;
  }
  return "unknown";
}

/* Sets `policy` on thread `tid` (0: the calling one); 0, or the errno. */
static int set_policy(pid_t tid, int policy) {
  struct sched_param param;
  memset(&param, 0, sizeof param);
  return sched_setscheduler(tid, policy, &param) == 0 ? 0 : errno;
}

/* Sets `policy` on every thread of this process, from /proc/self/task; 0, or the first errno. */
static int set_policy_everywhere(int policy) {
  DIR *tasks = opendir("/proc/self/task");
  if (tasks == NULL) return errno;
  int failure = 0;
  struct dirent *entry;
  while ((entry = readdir(tasks)) != NULL) {
    char *end = NULL;
    long tid = strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || tid <= 0) continue;
    int error = set_policy((pid_t)tid, policy);
    /* ESRCH: the thread ended since the directory was read. */
    if (error != 0 && error != ESRCH && failure == 0) failure = error;
  }
  closedir(tasks);
  return failure;
}
#endif

/* schedPolicy(): the calling thread's policy, 'other', 'batch', 'idle', 'fifo', 'rr' or 'unknown'. */
napi_value prefork_sched_policy(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef PREFORK_HAVE_SCHED_BATCH
  int policy = sched_getscheduler(0);
  if (policy < 0) return prefork_throw_errno(env, errno, "sched_getscheduler", NULL);
  napi_value result;
  PREFORK_CALL(env, napi_create_string_utf8(env, policy_name(policy & ~SCHED_RESET_ON_FORK), NAPI_AUTO_LENGTH, &result));
  return result;
#else
  return prefork_throw_errno(env, ENOSYS, "sched_getscheduler", "scheduling policies are Linux-only here");
#endif
}

/*
 * setSchedPolicy(name, everyThread): sets 'other' or 'batch' on the calling thread, or on every
 * thread of the process. Throws the errno (EPERM where a sandbox forbids it).
 */
napi_value prefork_set_sched_policy(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  PREFORK_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[16] = {0};
  size_t length = 0;
  bool every_thread = false;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok ||
      napi_get_value_bool(env, argv[1], &every_thread) != napi_ok) {
    napi_throw_type_error(env, NULL, "setSchedPolicy(name, everyThread): expected a string and a boolean");
    return NULL;
  }
#ifdef PREFORK_HAVE_SCHED_BATCH
  int policy;
  if (strcmp(name, "other") == 0) {
    policy = SCHED_OTHER;
  } else if (strcmp(name, "batch") == 0) {
    policy = SCHED_BATCH;
  } else {
    napi_throw_range_error(env, NULL, "setSchedPolicy: the policy must be 'other' or 'batch'");
    return NULL;
  }
  int error = every_thread ? set_policy_everywhere(policy) : set_policy(0, policy);
  if (error != 0) return prefork_throw_errno(env, error, "sched_setscheduler", NULL);
  return NULL;
#else
  return prefork_throw_errno(env, ENOSYS, "sched_setscheduler", "scheduling policies are Linux-only here");
#endif
}
