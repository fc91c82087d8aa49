/* Process handles for processes the runner did not spawn (those left in an action's cgroup):
 * pidfd_open, and a wait for a pidfd to become readable (the process has exited) that
 * blocks no thread. The runner's own children are watched by spawn.c's watchExit. */
#include "errors.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* pidfdOpen(pid) → fd (close-on-exec, as every pidfd). */
static napi_value js_pidfd_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t pid;
  if (argc < 1) return throw_type_error(env, "pidfdOpen(pid)");
  if (!get_int32(env, argv[0], &pid)) return NULL;
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return throw_system_error(env, errno, "pidfd_open", NULL);
  return make_int32(env, (int32_t)fd);
}

struct readable_wait {
  uv_poll_t poll;
  napi_env env;
  napi_deferred deferred;
  napi_ref resource;
  napi_async_context async_context;
};

static void free_wait(uv_handle_t *handle) { free(handle->data); }

static void settle(struct readable_wait *wait, int uv_status) {
  napi_env env = wait->env;
  napi_handle_scope handle_scope;
  napi_callback_scope callback_scope;
  napi_value resource, outcome;
  napi_open_handle_scope(env, &handle_scope);
  napi_get_reference_value(env, wait->resource, &resource);
  napi_open_callback_scope(env, resource, wait->async_context, &callback_scope);
  if (uv_status != 0) {
    throw_system_error(env, -uv_status, "uv_poll", NULL);
    napi_get_and_clear_last_exception(env, &outcome);
    napi_reject_deferred(env, wait->deferred, outcome);
  } else {
    napi_resolve_deferred(env, wait->deferred, make_undefined(env));
  }
  napi_close_callback_scope(env, callback_scope);
  napi_async_destroy(env, wait->async_context);
  napi_delete_reference(env, wait->resource);
  napi_close_handle_scope(env, handle_scope);
}

static void on_readable(uv_poll_t *poll, int uv_status, int events) {
  (void)events;
  struct readable_wait *wait = poll->data;
  /* Closed before the promise settles, so that its continuation may close the fd. */
  uv_close((uv_handle_t *)poll, free_wait);
  settle(wait, uv_status);
}

/* waitReadable(fd) → Promise<void>: resolves once the fd polls readable. The caller keeps
 * the fd and must not close it before the promise settles. */
static napi_value js_wait_readable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd;
  if (argc < 1) return throw_type_error(env, "waitReadable(fd)");
  if (!get_int32(env, argv[0], &fd)) return NULL;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct readable_wait *wait = calloc(1, sizeof *wait);
  if (wait == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  wait->env = env;
  int uv_result = uv_poll_init(loop, &wait->poll, fd);
  if (uv_result != 0) {
    free(wait);
    return throw_system_error(env, -uv_result, "uv_poll_init", NULL);
  }
  wait->poll.data = wait;
  napi_value promise, resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "chroot-runner:waitReadable", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, resource, 1, &wait->resource);
  napi_async_init(env, resource, name, &wait->async_context);
  napi_create_promise(env, &wait->deferred, &promise);
  uv_result = uv_poll_start(&wait->poll, UV_READABLE, on_readable);
  if (uv_result != 0) {
    uv_close((uv_handle_t *)&wait->poll, free_wait);
    settle(wait, uv_result);
  }
  return promise;
}

bool register_pidfd(napi_env env, napi_value exports) {
  return export_function(env, exports, "pidfdOpen", js_pidfd_open) &&
         export_function(env, exports, "waitReadable", js_wait_readable);
}
