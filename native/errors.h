/* Shared helpers of the addon: Node-style system errors and argument reading. */
#ifndef CHROOT_RUNNER_ERRORS_H
#define CHROOT_RUNNER_ERRORS_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

/* Throws an Error with code (e.g. "EPERM"), errno, syscall and, when path is not NULL,
 * path, the way Node's own fs functions do. Always returns NULL for convenience. */
napi_value throw_system_error(napi_env env, int err, const char *syscall, const char *path);

/* Throws a TypeError naming the argument. Always returns NULL. */
napi_value throw_type_error(napi_env env, const char *message);

/* Argument readers: each returns false after throwing a TypeError. */
bool get_int32(napi_env env, napi_value value, int32_t *out);
bool get_uint32(napi_env env, napi_value value, uint32_t *out);
bool get_int64(napi_env env, napi_value value, int64_t *out);
bool get_uint64(napi_env env, napi_value value, uint64_t *out);
/* Copies a JS string into a malloc'ed NUL-terminated buffer; rejects strings holding NUL.
 * The caller frees *out. */
bool get_string(napi_env env, napi_value value, char **out);
/* Like get_string, but undefined and null give *out == NULL. */
bool get_optional_string(napi_env env, napi_value value, char **out);

/* What spawn and watchExit report goes into an Int32Array of the caller's, REPORT_WORDS long
 * (exported as reportWords): filled in place, it costs less than an object made and filled
 * through Node-API, where V8's runtime adds each property. Longer than the 64 bytes that V8
 * keeps on its heap, so that finding its contents copies nothing. */
enum {
  REPORT_HEADER_WORDS = 3,
  REPORT_STATUS_WORDS = 256,
  REPORT_WORDS = REPORT_HEADER_WORDS + REPORT_STATUS_WORDS,
};
/* The words of a report array; NULL after throwing a TypeError. */
int32_t *report_words(napi_env env, napi_value value);

napi_value make_int32(napi_env env, int32_t value);
napi_value make_undefined(napi_env env);

/* Defines one function property on exports. Returns false after throwing. */
bool export_function(napi_env env, napi_value exports, const char *name, napi_callback fn);

/* Each source file of the addon registers its functions with one of these. */
bool register_syscalls(napi_env env, napi_value exports);
bool register_spawn(napi_env env, napi_value exports);
bool register_exit_watch(napi_env env, napi_value exports);
bool register_seccomp(napi_env env, napi_value exports);
bool register_pidfd(napi_env env, napi_value exports);
bool register_jsonnet(napi_env env, napi_value exports);
bool register_network_namespace(napi_env env, napi_value exports);

#endif
