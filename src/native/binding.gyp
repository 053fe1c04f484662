# The prefork addon: plain C against N-API 8, so one build serves every Node release with N-API 8,
# and libuv (through Node's headers) for watching listeners in Node's own event loop.
#
# It lives here, not at the package root, because npm runs `node-gyp rebuild` at install for any
# package with a root binding.gyp: users get the prebuilt binary instead (see README, Install).
# `portable=1` compiles the POSIX fallbacks that macOS and the BSDs use (see prefork.h).
{
  "variables": { "portable%": 0 },
  "targets": [
    {
      "target_name": "prefork",
      "sources": ["prefork.c", "listener.c", "accept.c", "watcher.c", "lifeline.c", "page.c", "conn.c", "sched.c"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["portable==1", { "defines": ["PREFORK_PORTABLE"] }]],
      # Node's common.gypi silences unused parameters and asks for -O3; we want all of -Wextra and
      # -O2, which is plenty for code that is a thin layer over system calls.
      "cflags!": ["-Wno-unused-parameter", "-O3"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=gnu11", "-Wall", "-Wextra"] },
      "configurations": {
        "Release": { "cflags!": ["-O3"] }
      }
    }
  ]
}
