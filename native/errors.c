#include "errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Node's own names for errno values; uv_err_name would need libuv symbols, which Node
 * exports, but strerrorname_np (glibc >= 2.32) gives the same names without them. */
static const char *errno_name(int err) {
  const char *name = strerrorname_np(err);
  return name != NULL ? name : "EUNKNOWN";
}

napi_value throw_system_error(napi_env env, int err, const char *syscall, const char *path) {
  char message[512];
  if (path != NULL) {
    snprintf(message, sizeof message, "%s: %s, %s '%s'", errno_name(err), strerror(err), syscall,
             path);
  } else {
    snprintf(message, sizeof message, "%s: %s, %s", errno_name(err), strerror(err), syscall);
  }
  napi_value msg, code, error, value;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return NULL;
  /* Node reports errno as a negative number (uv convention). */
  napi_create_int32(env, -err, &value);
  napi_set_named_property(env, error, "errno", value);
  napi_set_named_property(env, error, "code", code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  if (path != NULL) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, error, "path", value);
  }
  napi_throw(env, error);
  return NULL;
}

napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

bool get_int32(napi_env env, napi_value value, int32_t *out) {
  if (napi_get_value_int32(env, value, out) != napi_ok) {
    throw_type_error(env, "expected a number");
    return false;
  }
  return true;
}

bool get_uint32(napi_env env, napi_value value, uint32_t *out) {
  if (napi_get_value_uint32(env, value, out) != napi_ok) {
    throw_type_error(env, "expected a number");
    return false;
  }
  return true;
}

bool get_int64(napi_env env, napi_value value, int64_t *out) {
  if (napi_get_value_int64(env, value, out) != napi_ok) {
    throw_type_error(env, "expected a number");
    return false;
  }
  return true;
}

bool get_uint64(napi_env env, napi_value value, uint64_t *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_bigint) {
    bool lossless;
    if (napi_get_value_bigint_uint64(env, value, out, &lossless) != napi_ok || !lossless) {
      throw_type_error(env, "expected an unsigned 64-bit integer");
      return false;
    }
    return true;
  }
  int64_t signed_value;
  if (!get_int64(env, value, &signed_value)) return false;
  if (signed_value < 0) {
    throw_type_error(env, "expected a non-negative number");
    return false;
  }
  *out = (uint64_t)signed_value;
  return true;
}

bool get_string(napi_env env, napi_value value, char **out) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    throw_type_error(env, "expected a string");
    return false;
  }
  char *buffer = malloc(length + 1);
  if (buffer == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  napi_get_value_string_utf8(env, value, buffer, length + 1, &length);
  if (strlen(buffer) != length) {
    free(buffer);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "strings must not contain NUL bytes");
    return false;
  }
  *out = buffer;
  return true;
}

bool get_optional_string(napi_env env, napi_value value, char **out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_undefined || type == napi_null) {
    *out = NULL;
    return true;
  }
  return get_string(env, value, out);
}

int32_t *report_words(napi_env env, napi_value value) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_int32_array || length < REPORT_WORDS) {
    throw_type_error(env, "expected an Int32Array of reportWords words");
    return NULL;
  }
  return data;
}

napi_value make_int32(napi_env env, int32_t value) {
  napi_value result;
  napi_create_int32(env, value, &result);
  return result;
}

napi_value make_undefined(napi_env env) {
  napi_value result;
  napi_get_undefined(env, &result);
  return result;
}

bool export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value function;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &function) != napi_ok) return false;
  return napi_set_named_property(env, exports, name, function) == napi_ok;
}
