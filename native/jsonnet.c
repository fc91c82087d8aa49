/* Evaluating Jsonnet in-process with the official C library, libjsonnet, loaded at run time
 * (dlopen of the runtime library libjsonnet.so.0, Debian's libjsonnet0), so that the addon
 * builds without its headers and a host without it still reads plain JSON configurations.
 * What is evaluated and with which external variables is decided in TypeScript
 * (src/server/config.ts); this only runs the VM. */
#include "errors.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* libjsonnet's C API (libjsonnet.h): declared here, not included. */
struct JsonnetVm;

struct libjsonnet {
  struct JsonnetVm *(*make)(void);
  void (*ext_var)(struct JsonnetVm *vm, const char *key, const char *value);
  char *(*evaluate_snippet)(struct JsonnetVm *vm, const char *filename, const char *snippet,
                            int *error);
  char *(*realloc)(struct JsonnetVm *vm, char *buffer, size_t size);
  void (*destroy)(struct JsonnetVm *vm);
  const char *(*version)(void);
};

#define LIBRARY_NAME "libjsonnet.so.0"

static struct libjsonnet library;
static const char *library_error;

/* Loads libjsonnet once; false (library_error says why) when it is not installed. */
static bool load_library(void) {
  if (library.make != NULL) return true;
  void *handle = dlopen(LIBRARY_NAME, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    library_error = dlerror();
    return false;
  }
  struct libjsonnet loaded = {
      .make = (struct JsonnetVm * (*)(void)) dlsym(handle, "jsonnet_make"),
      .ext_var = (void (*)(struct JsonnetVm *, const char *, const char *))dlsym(
          handle, "jsonnet_ext_var"),
      .evaluate_snippet = (char *(*)(struct JsonnetVm *, const char *, const char *, int *))dlsym(
          handle, "jsonnet_evaluate_snippet"),
      .realloc = (char *(*)(struct JsonnetVm *, char *, size_t))dlsym(handle, "jsonnet_realloc"),
      .destroy = (void (*)(struct JsonnetVm *))dlsym(handle, "jsonnet_destroy"),
      .version = (const char *(*)(void))dlsym(handle, "jsonnet_version"),
  };
  if (loaded.make == NULL || loaded.ext_var == NULL || loaded.evaluate_snippet == NULL ||
      loaded.realloc == NULL || loaded.destroy == NULL || loaded.version == NULL) {
    library_error = LIBRARY_NAME " lacks a function chroot-runner needs";
    dlclose(handle);
    return false;
  }
  library = loaded;
  return true;
}

static napi_value throw_library_error(napi_env env) {
  return throw_system_error(env, ELIBACC, "dlopen", library_error);
}

/* jsonnetVersion(): libjsonnet's version ("v0.20.0"); throws ELIBACC when it cannot be
 * loaded. */
static napi_value js_jsonnet_version(napi_env env, napi_callback_info info) {
  (void)info;
  if (!load_library()) return throw_library_error(env);
  napi_value result;
  if (napi_create_string_utf8(env, library.version(), NAPI_AUTO_LENGTH, &result) != napi_ok)
    return NULL;
  return result;
}

/* Sets each [name, value] of `pairs` as an external string variable. */
static bool set_ext_vars(napi_env env, struct JsonnetVm *vm, napi_value pairs) {
  uint32_t count;
  if (napi_get_array_length(env, pairs, &count) != napi_ok) {
    throw_type_error(env, "extVars must be an array of [name, value]");
    return false;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value pair, name_value, value_value;
    char *name = NULL, *value = NULL;
    if (napi_get_element(env, pairs, i, &pair) != napi_ok ||
        napi_get_element(env, pair, 0, &name_value) != napi_ok ||
        napi_get_element(env, pair, 1, &value_value) != napi_ok ||
        !get_string(env, name_value, &name))
      return false;
    if (!get_string(env, value_value, &value)) {
      free(name);
      return false;
    }
    library.ext_var(vm, name, value);
    free(name);
    free(value);
  }
  return true;
}

/* Throws libjsonnet's evaluation error as an Error with code ERR_JSONNET_EVALUATION and the
 * file's name as `path`. */
static napi_value throw_evaluation_error(napi_env env, const char *message, const char *filename) {
  napi_value code, text, error, path;
  if (napi_create_string_utf8(env, "ERR_JSONNET_EVALUATION", NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, code, text, &error) != napi_ok ||
      napi_create_string_utf8(env, filename, NAPI_AUTO_LENGTH, &path) != napi_ok)
    return NULL;
  napi_set_named_property(env, error, "code", code);
  napi_set_named_property(env, error, "path", path);
  napi_throw(env, error);
  return NULL;
}

/* evaluateJsonnet(filename, snippet, extVars): the JSON text `snippet` evaluates to, imports
 * relative to `filename`'s directory. */
static napi_value js_evaluate_jsonnet(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return throw_type_error(env, "evaluateJsonnet(filename, snippet, extVars)");
  if (!load_library()) return throw_library_error(env);
  char *filename = NULL, *snippet = NULL;
  napi_value result = NULL;
  struct JsonnetVm *vm = NULL;
  if (!get_string(env, args[0], &filename) || !get_string(env, args[1], &snippet)) goto out;
  vm = library.make();
  if (vm == NULL) {
    throw_system_error(env, ENOMEM, "jsonnet_make", NULL);
    goto out;
  }
  if (!set_ext_vars(env, vm, args[2])) goto out;
  int failed = 0;
  char *output = library.evaluate_snippet(vm, filename, snippet, &failed);
  if (failed)
    throw_evaluation_error(env, output, filename);
  else if (napi_create_string_utf8(env, output, NAPI_AUTO_LENGTH, &result) != napi_ok)
    result = NULL;
  library.realloc(vm, output, 0);
out:
  if (vm != NULL) library.destroy(vm);
  free(filename);
  free(snippet);
  return result;
}

bool register_jsonnet(napi_env env, napi_value exports) {
  return export_function(env, exports, "jsonnetVersion", js_jsonnet_version) &&
         export_function(env, exports, "evaluateJsonnet", js_evaluate_jsonnet);
}
