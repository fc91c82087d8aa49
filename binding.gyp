{
  "targets": [
    {
      "target_name": "chroot_runner",
      "sources": [
        "native/addon.c",
        "native/errors.c",
        "native/syscalls.c",
        "native/spawn.c",
        "native/interpreter.c",
        "native/exit-watch.c",
        "native/seccomp.c",
        "native/pidfd.c",
        "native/jsonnet.c",
        "native/network-namespace.c"
      ],
      "libraries": ["-ldl"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-fno-strict-aliasing"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"]
    },
    {
      "target_name": "chroot-runner-init",
      "type": "executable",
      "sources": ["native/init.c"],
      "cflags": [
        "-Wall",
        "-Wextra",
        "-Werror",
        "-std=gnu11",
        "-Os",
        "-ffreestanding",
        "-fno-stack-protector"
      ],
      "ldflags": ["-static", "-nostdlib", "-Wl,-e,init_entry"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}
