{
  # rdma-core is found with pkg-config; without it a stub builds that reports
  # available: false (the software iWARP provider needs no native code).
  # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a native method that throws while a worker is being
  # terminated cannot reach JS; without it node-addon-api rethrows in C++ and the process aborts.
  "variables": {
    "with_rdma%": "<!(pkg-config --exists libibverbs librdmacm && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "smbdirect_native",
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "conditions": [
        ["with_rdma==1", {
          "sources": ["native/common.cc", "native/device.cc", "native/memory.cc", "native/cq.cc",
                      "native/qp.cc", "native/cm.cc", "native/crc32c.cc"],
          "cflags_cc": ["<!@(pkg-config --cflags libibverbs librdmacm)"],
          "libraries": ["<!@(pkg-config --libs libibverbs librdmacm)"]
        }, {
          "sources": ["native/stub.cc", "native/crc32c.cc"]
        }]
      ]
    }
  ]
}
