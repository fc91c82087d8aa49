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

struct exit_watch {
  uv_poll_t poll;
  napi_env env;
  napi_deferred deferred;
  /* The caller's report array (errors.h), also the async resource of the callback. */
  napi_ref report;
  napi_async_context async_context;
  pid_t pid;
  int status_fd;
};

static void free_watch(uv_handle_t *handle) { free(handle->data); }

/* Fills the report: whether the process exited (1) or was killed (0), its exit code or signal,
 * and the words the init wrote to its status pipe before it exited, pairs of int32 (kind,
 * value): their count, then the words. */
static void fill_report(struct exit_watch *watch, int32_t *words, int status) {
  words[0] = WIFEXITED(status);
  words[1] = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  ssize_t length = 0;
  if (watch->status_fd >= 0) {
    do {
      length = read(watch->status_fd, words + REPORT_HEADER_WORDS,
                    REPORT_STATUS_WORDS * sizeof(int32_t));
    } while (length < 0 && errno == EINTR);
    if (length < 0) length = 0;
  }
  words[2] = (int32_t)((size_t)length / sizeof(int32_t));
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
  napi_value report, outcome;
  napi_open_handle_scope(env, &handle_scope);
  napi_get_reference_value(env, watch->report, &report);
  /* A callback scope makes Node run the promise's continuations when it closes. */
  napi_open_callback_scope(env, report, watch->async_context, &callback_scope);
  if (err != 0) {
    throw_system_error(env, err, uv_status == 0 ? "wait4" : "uv_poll", NULL);
    napi_get_and_clear_last_exception(env, &outcome);
    napi_reject_deferred(env, watch->deferred, outcome);
  } else {
    int32_t *words = report_words(env, report);
    if (words != NULL) fill_report(watch, words, status);
    napi_resolve_deferred(env, watch->deferred, make_undefined(env));
  }
  napi_close_callback_scope(env, callback_scope);
  napi_async_destroy(env, watch->async_context);
  napi_delete_reference(env, watch->report);
  napi_close_handle_scope(env, handle_scope);
}

/* watchExit(pidfd, pid, statusFd, report) → Promise<undefined>: waits for the process to exit
 * (uv_poll on its pidfd), reaps it and reads what it wrote to the status pipe, into `report`
 * (fill_report). The caller keeps ownership of both fds and must not close them before the
 * promise settles. */
static napi_value js_watch_exit(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4) return throw_type_error(env, "watchExit(pidfd, pid, statusFd, report)");
  int32_t pidfd, pid, status_fd;
  if (!get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &pid) ||
      !get_int32(env, argv[2], &status_fd) || report_words(env, argv[3]) == NULL)
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
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:watchExit", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[3], 1, &watch->report);
  napi_async_init(env, argv[3], name, &watch->async_context);
  napi_create_promise(env, &watch->deferred, &promise);
  uv_result = uv_poll_start(&watch->poll, UV_READABLE, on_exit_readable);
  if (uv_result != 0) {
    napi_value error;
    throw_system_error(env, -uv_result, "uv_poll_start", NULL);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, watch->deferred, error);
    napi_async_destroy(env, watch->async_context);
    napi_delete_reference(env, watch->report);
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
  return napi_set_named_property(env, exports, "reportWords", make_int32(env, REPORT_WORDS)) ==
             napi_ok &&
         export_function(env, exports, "watchExit", js_watch_exit) &&
         export_function(env, exports, "pidfdSendSignal", js_pidfd_send_signal);
}
