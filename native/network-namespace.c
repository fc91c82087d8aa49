/* createNetworkNamespace(): a new network namespace with loopback up, made on a libuv
 * thread-pool thread ahead of the action that enters it (setns), so that its cost (the
 * largest of an action's kernel work) is off the event loop and off the action's path.
 * unshare(CLONE_NEWNET) moves only the calling thread; the thread returns to its own
 * namespace before it takes other work of the pool. */
#include "errors.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const namespace_path = "/proc/thread-self/ns/net";

struct network_namespace_work {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int error;
  const char *syscall;
  const char *path;
};

static int open_namespace(void) {
  return (int)syscall(SYS_openat, AT_FDCWD, namespace_path, O_RDONLY | O_CLOEXEC);
}

static void create_namespace(napi_env env, void *data) {
  (void)env;
  struct network_namespace_work *work = data;
  work->fd = -1;
  int original = open_namespace();
  if (original < 0) {
    work->error = errno;
    work->syscall = "open";
    work->path = namespace_path;
    return;
  }
  /* Whether this thread may come back (below) is asked before it leaves: a runner that is
   * root only of a user namespace of its own may make a network namespace but not enter its
   * original one, and that is an error to report, not a reason to abort. */
  if (setns(original, CLONE_NEWNET) < 0) {
    work->error = errno;
    work->syscall = "setns";
    work->path = namespace_path;
  } else if (unshare(CLONE_NEWNET) < 0) {
    work->error = errno;
    work->syscall = "unshare";
  } else {
    int syscall_id;
    if (loopback_up(&syscall_id) < 0) {
      work->error = errno;
      work->syscall = spawn_syscall_name(syscall_id);
    } else if ((work->fd = open_namespace()) < 0) {
      work->error = errno;
      work->syscall = "open";
      work->path = namespace_path;
    }
    /* A pool thread left in the new namespace would run the runner's later work there (its
     * DNS lookups, for one): nothing could tell, so this cannot be reported and go on. */
    if (setns(original, CLONE_NEWNET) < 0) {
      perror("chroot-runner: setns back to the runner's network namespace");
      abort();
    }
  }
  close(original);
}

static void complete(napi_env env, napi_status status, void *data) {
  struct network_namespace_work *work = data;
  if (status != napi_ok && work->error == 0) {
    work->error = ECANCELED;
    work->syscall = "uv_queue_work";
  }
  if (work->error == 0) {
    napi_resolve_deferred(env, work->deferred, make_int32(env, work->fd));
  } else {
    if (work->fd >= 0) close(work->fd);
    napi_value error;
    throw_system_error(env, work->error, work->syscall, work->path);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, work->deferred, error);
  }
  napi_delete_async_work(env, work->work);
  free(work);
}

/* createNetworkNamespace() → Promise<fd>: an fd (close-on-exec) on a new network namespace
 * whose loopback is up, owned by the runner's user namespace. */
static napi_value js_create_network_namespace(napi_env env, napi_callback_info info) {
  (void)info;
  struct network_namespace_work *work = calloc(1, sizeof *work);
  if (work == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  work->fd = -1;
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:createNetworkNamespace", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &work->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, create_namespace, complete, work, &work->work) !=
          napi_ok ||
      napi_queue_async_work(env, work->work) != napi_ok) {
    free(work);
    return NULL;
  }
  return promise;
}

bool register_network_namespace(napi_env env, napi_value exports) {
  return export_function(env, exports, "createNetworkNamespace", js_create_network_namespace);
}
