{
  "targets": [
    {
      "target_name": "vhost_user_zbd_native",
      "sources": [
        "native/addon.cc",
        "native/socket.cc",
        "native/memory.cc",
        "native/poll.cc",
        "native/file.cc",
        "native/zone-ioctl.cc",
        "native/io-ring.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
