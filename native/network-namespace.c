/* createNetworkNamespace(): a new network namespace with loopback up, made ahead of the
 * action that enters it (setns), so that its cost (the largest of an action's kernel work)
 * is off the event loop and off the action's path. It is made on a thread of its own that
 * ends with it: unshare(CLONE_NEWNET) moves only the calling thread, and a thread that never
 * returns to the runner's namespace needs no way back (a runner that is root only of a user
 * namespace of its own may make one, but not setns into the host's). The thread runs at
 * SCHED_IDLE: it uses only a core that nothing else of the machine wants, and never competes
 * with the actions it prepares for (when asked: the engine's first ones are made at normal
 * priority, as nothing runs yet that they could slow down, and a busy machine would delay
 * its start-up). */
#include "errors.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const namespace_path = "/proc/thread-self/ns/net";

struct network_namespace_work {
  napi_threadsafe_function delivery;
  napi_deferred deferred;
  bool idle;
  int fd;
  int error;
  const char *syscall;
  const char *path;
};

static void make_namespace(struct network_namespace_work *work) {
  /* Refused (a seccomp profile): the namespace is made at normal priority. */
  struct sched_param idle = {.sched_priority = 0};
  if (work->idle) (void)sched_setscheduler(0, SCHED_IDLE, &idle);
  int syscall_id;
  if (unshare(CLONE_NEWNET) < 0) {
    work->error = errno;
    work->syscall = "unshare";
  } else if (loopback_up(&syscall_id) < 0) {
    work->error = errno;
    work->syscall = spawn_syscall_name(syscall_id);
  } else if ((work->fd = (int)syscall(SYS_openat, AT_FDCWD, namespace_path,
                                      O_RDONLY | O_CLOEXEC)) < 0) {
    work->error = errno;
    work->syscall = "open";
    work->path = namespace_path;
  }
}

/* Its name, as top and /proc/<pid>/task/<tid>/comm show it (15 characters at most). */
static const char *const thread_name = "netns-ahead";

static void *namespace_thread(void *data) {
  struct network_namespace_work *work = data;
  pthread_setname_np(pthread_self(), thread_name);
  make_namespace(work);
  /* work is the main thread's once delivered: the function is released by its copy. */
  napi_threadsafe_function delivery = work->delivery;
  if (napi_call_threadsafe_function(delivery, work, napi_tsfn_blocking) == napi_ok) {
    napi_release_threadsafe_function(delivery, napi_tsfn_release);
  } else {
    /* The environment is going away (napi_closing: the function is gone, not to be
     * released): nobody waits for the namespace. */
    if (work->fd >= 0) close(work->fd);
    free(work);
  }
  return NULL;
}

/* On the main thread: settles the promise. env is NULL when the environment is torn down
 * with the delivery still queued. */
static void deliver(napi_env env, napi_value callback, void *context, void *data) {
  (void)callback;
  (void)context;
  struct network_namespace_work *work = data;
  if (env == NULL) {
    if (work->fd >= 0) close(work->fd);
  } else if (work->error == 0) {
    napi_resolve_deferred(env, work->deferred, make_int32(env, work->fd));
  } else {
    napi_value error;
    throw_system_error(env, work->error, work->syscall, work->path);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, work->deferred, error);
  }
  free(work);
}

/* createNetworkNamespace(idle) → Promise<fd>: an fd (close-on-exec) on a new network
 * namespace whose loopback is up, owned by the runner's user namespace; made at SCHED_IDLE
 * when idle is true. */
static napi_value js_create_network_namespace(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool idle;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &idle) != napi_ok)
    return throw_type_error(env, "idle must be a boolean");
  struct network_namespace_work *work = calloc(1, sizeof *work);
  if (work == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  work->idle = idle;
  work->fd = -1;
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:createNetworkNamespace", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &work->deferred, &promise) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, deliver,
                                      &work->delivery) != napi_ok) {
    free(work);
    return NULL;
  }
  /* The thread starts with every signal blocked (as libuv's own threads do): the runner's
   * signals are the event loop's. */
  pthread_attr_t attributes;
  pthread_t thread;
  sigset_t all, original;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &original);
  int error = pthread_attr_init(&attributes);
  if (error == 0) {
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    error = pthread_create(&thread, &attributes, namespace_thread, work);
    pthread_attr_destroy(&attributes);
  }
  pthread_sigmask(SIG_SETMASK, &original, NULL);
  if (error != 0) {
    napi_release_threadsafe_function(work->delivery, napi_tsfn_release);
    work->error = error;
    work->syscall = "pthread_create";
    deliver(env, NULL, NULL, work);
  }
  return promise;
}

bool register_network_namespace(napi_env env, napi_value exports) {
  return export_function(env, exports, "createNetworkNamespace", js_create_network_namespace);
}
