// Built when pkg-config finds no rdma-core (libibverbs/librdmacm) at build
// time: the package still loads and reports why RDMA is unavailable.
#include <napi.h>

namespace smbdirect {
void InitCrc32c(Napi::Env env, Napi::Object exports);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("available", Napi::Boolean::New(env, false));
  exports.Set("withRdmaCore", Napi::Boolean::New(env, false));
  exports.Set("reason", Napi::String::New(env,
      "built without rdma-core: pkg-config found no libibverbs/librdmacm at build time "
      "(install libibverbs-dev and librdmacm-dev, then rebuild with `npm rebuild smbdirect`)"));
  smbdirect::InitCrc32c(env, exports);  // the CRC32c of MPA FPDUs needs no rdma-core
  return exports;
}

NODE_API_MODULE(smbdirect_native, Init)
