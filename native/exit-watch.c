/* Watching an action's exit without blocking the event loop, and signalling it: both through
 * its pidfd. */
#include "errors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

enum { MAX_STATUS_WORDS = 256 };

struct exit_watch {
  uv_poll_t poll;
  napi_env env;
  napi_deferred deferred;
  napi_ref resource;
  napi_async_context async_context;
  pid_t pid;
  int status_fd;
};

static void free_watch(uv_handle_t *handle) { free(handle->data); }

static void set_number(napi_env env, napi_value object, const char *name, int32_t number) {
  napi_set_named_property(env, object, name, make_int32(env, number));
}

static napi_value exit_result(napi_env env, struct exit_watch *watch, int status) {
  napi_value result, records, buffer, null;
  napi_get_null(env, &null);
  napi_create_object(env, &result);
  if (WIFEXITED(status)) {
    set_number(env, result, "exitCode", WEXITSTATUS(status));
    napi_set_named_property(env, result, "signal", null);
  } else {
    napi_set_named_property(env, result, "exitCode", null);
    set_number(env, result, "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  /* The init's records, written before it exited: pairs of int32 (kind, value), as one
   * Int32Array (one copy, not an element each). */
  int32_t words[MAX_STATUS_WORDS];
  ssize_t length = 0;
  if (watch->status_fd >= 0) {
    do {
      length = read(watch->status_fd, words, sizeof words);
    } while (length < 0 && errno == EINTR);
    if (length < 0) length = 0;
  }
  size_t count = (size_t)length / sizeof(int32_t);
  void *data;
  napi_create_arraybuffer(env, count * sizeof(int32_t), &data, &buffer);
  if (count > 0) memcpy(data, words, count * sizeof(int32_t));
  napi_create_typedarray(env, napi_int32_array, count, buffer, 0, &records);
  napi_set_named_property(env, result, "records", records);
  return result;
}

static void on_exit_readable(uv_poll_t *poll, int uv_status, int events) {
  (void)events;
  struct exit_watch *watch = poll->data;
  napi_env env = watch->env;
  int status = 0;
  pid_t reaped = 0;
  int err = 0;
  if (uv_status == 0) {
    do {
      reaped = wait4(watch->pid, &status, WNOHANG | __WALL, NULL);
    } while (reaped < 0 && errno == EINTR);
    if (reaped == 0) return; /* not yet: keep watching */
    if (reaped < 0) err = errno;
  } else {
    err = -uv_status;
  }
  /* Closed before the promise settles: its continuation may close the pidfd, and libuv must
   * not touch that fd number afterwards. The watch itself is freed on a later iteration. */
  uv_close((uv_handle_t *)poll, free_watch);

  napi_handle_scope handle_scope;
  napi_callback_scope callback_scope;
  napi_value resource, outcome;
  napi_open_handle_scope(env, &handle_scope);
  napi_get_reference_value(env, watch->resource, &resource);
  /* A callback scope makes Node run the promise's continuations when it closes. */
  napi_open_callback_scope(env, resource, watch->async_context, &callback_scope);
  if (err != 0) {
    throw_system_error(env, err, uv_status == 0 ? "wait4" : "uv_poll", NULL);
    napi_get_and_clear_last_exception(env, &outcome);
    napi_reject_deferred(env, watch->deferred, outcome);
  } else {
    napi_resolve_deferred(env, watch->deferred, exit_result(env, watch, status));
  }
  napi_close_callback_scope(env, callback_scope);
  napi_async_destroy(env, watch->async_context);
  napi_delete_reference(env, watch->resource);
  napi_close_handle_scope(env, handle_scope);
}

/* watchExit(pidfd, pid, statusFd) → Promise<{ exitCode, signal, records }>: waits for the
 * process to exit (uv_poll on its pidfd), reaps it and reads what it wrote to the status
 * pipe. The caller keeps
 * ownership of both fds and must not close them before the promise settles. */
static napi_value js_watch_exit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return throw_type_error(env, "watchExit(pidfd, pid, statusFd)");
  int32_t pidfd, pid, status_fd;
  if (!get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &pid) ||
      !get_int32(env, argv[2], &status_fd))
    return NULL;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct exit_watch *watch = calloc(1, sizeof *watch);
  if (watch == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  watch->env = env;
  watch->pid = pid;
  watch->status_fd = status_fd;
  int uv_result = uv_poll_init(loop, &watch->poll, pidfd);
  if (uv_result != 0) {
    free(watch);
    return throw_system_error(env, -uv_result, "uv_poll_init", NULL);
  }
  watch->poll.data = watch;
  napi_value promise, resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "chroot-runner:watchExit", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, resource, 1, &watch->resource);
  napi_async_init(env, resource, name, &watch->async_context);
  napi_create_promise(env, &watch->deferred, &promise);
  uv_result = uv_poll_start(&watch->poll, UV_READABLE, on_exit_readable);
  if (uv_result != 0) {
    napi_value error;
    throw_system_error(env, -uv_result, "uv_poll_start", NULL);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, watch->deferred, error);
    napi_async_destroy(env, watch->async_context);
    napi_delete_reference(env, watch->resource);
    uv_close((uv_handle_t *)&watch->poll, free_watch);
  }
  return promise;
}

/* pidfdSendSignal(pidfd, signal) → true, or false when the process has already exited. */
static napi_value js_pidfd_send_signal(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t pidfd, sig;
  if (argc < 2 || !get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &sig)) {
    return argc < 2 ? throw_type_error(env, "pidfdSendSignal(pidfd, signal)") : NULL;
  }
  napi_value result;
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
    if (errno != ESRCH) return throw_system_error(env, errno, "pidfd_send_signal", NULL);
    napi_get_boolean(env, false, &result);
    return result;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

bool register_exit_watch(napi_env env, napi_value exports) {
  return export_function(env, exports, "watchExit", js_watch_exit) &&
         export_function(env, exports, "pidfdSendSignal", js_pidfd_send_signal);
}
