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
      "conditions": [
        ["target_arch=='x64'", {"sources": ["native/clone3-x86_64.S"], "defines": ["CLONE3_STUB"]}],
        ["target_arch=='arm64'", {"sources": ["native/clone3-aarch64.S"], "defines": ["CLONE3_STUB"]}]
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
