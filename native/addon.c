/* The addon's entry point: every source file registers its own functions. */
#include "errors.h"

static napi_value init(napi_env env, napi_value exports) {
  if (!register_syscalls(env, exports) || !register_spawn(env, exports) ||
      !register_exit_watch(env, exports) || !register_seccomp(env, exports) ||
      !register_pidfd(env, exports) || !register_jsonnet(env, exports) ||
      !register_network_namespace(env, exports))
    return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
