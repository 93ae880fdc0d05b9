#include "common.h"

#include <fcntl.h>

#include <cstring>

namespace smbdirect {

// ---- errors ---------------------------------------------------------------

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM)
    E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EINVAL) E(ENFILE) E(EMFILE)
    E(ENOSPC) E(EPIPE) E(ERANGE) E(ENOSYS) E(ENODATA) E(ETIME) E(EPROTO) E(EOVERFLOW)
    E(EOPNOTSUPP) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ECONNABORTED)
    E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH)
    E(EALREADY) E(EINPROGRESS) E(EPROTONOSUPPORT) E(EAFNOSUPPORT) E(ESHUTDOWN) E(ECANCELED)
    E(EHOSTDOWN) E(ENOLINK) E(EREMOTEIO) E(ENOMSG) E(EBADMSG) E(EMSGSIZE) E(ENOTSOCK) E(ENOTTY)
    E(EROFS) E(EDEADLK) E(ESTALE) E(EFBIG) E(ENOPROTOOPT) E(EBADFD) E(ENOMEDIUM) E(EL2HLT)
#undef E
    default:
      return "EUNKNOWN";
  }
}

// An error with `code`: an instance of the class JS handed over (setErrorClass), else of
// `fallback` (Error, TypeError, RangeError) with code set.
template <typename E>
static Napi::Error CodedError(Napi::Env env, const char* code, const std::string& msg) {
  auto* data = env.GetInstanceData<InstanceData>();
  if (data && !data->errorClass.IsEmpty()) {
    Napi::Object o = data->errorClass.New({Napi::String::New(env, code), Napi::String::New(env, msg)});
    return Napi::Error(env, o);
  }
  E e = E::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  // rdma-core's providers are not of one mind: some post calls return -errno (siw's user-space
  // provider: -EINVAL for a Local Invalidate, -errno from its doorbell on a device being removed)
  if (err < 0) err = -err;
  std::string msg = std::string(syscall) + " failed: " + ErrnoName(err) + " (" + strerror(err) + ")";
  Napi::Error e = CodedError<Napi::Error>(env, ErrnoName(err), msg);
  e.Set("errno", Napi::Number::New(env, -err));  // negative, as node's system errors
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) { throw ErrnoError(env, err, syscall); }

void ThrowType(Napi::Env env, const std::string& msg) { throw CodedError<Napi::TypeError>(env, "ERR_INVALID_ARG_TYPE", msg); }

void ThrowRange(Napi::Env env, const std::string& msg) { throw CodedError<Napi::RangeError>(env, "ERR_OUT_OF_RANGE", msg); }

void ThrowCode(Napi::Env env, const char* code, const std::string& msg) { throw CodedError<Napi::Error>(env, code, msg); }

// setErrorClass(cls): errors of this environment's addon are `new cls(code, message)` from now on.
static Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) ThrowType(env, "setErrorClass needs a class");
  auto* data = env.GetInstanceData<InstanceData>();
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// ---- resources ------------------------------------------------------------

thread_local bool Resource::in_finalizer = false;

Resource::Resource() : id_(0) {}

Resource::~Resource() {
  // Normally closed already (Finalize). A constructor that threw leaves an
  // unclosed node with no native object yet: just unlink it.
  if (closed_) return;
  for (Resource* p : parents_) p->children_.erase(this);
  try {
    for (auto& r : parentRefs_) r.Reset();
  } catch (...) {  // a destructor must not throw
  }
  if (instance_) instance_->live.remove(this);
}

void Resource::Register(Napi::Env env) {
  instance_ = Instance(env);
  id_ = instance_->nextId++;
  instance_->live.push_back(this);
}

void Resource::Adopt(Resource* parent, Napi::Object parentObject) {
  Adopt(parent);
  parentRefs_.push_back(Napi::Persistent(parentObject));
}

void Resource::Adopt(Resource* parent) {
  parent->children_.insert(this);
  parents_.push_back(parent);
}

void Resource::Reparent(Resource* from, Resource* to, Napi::Object toObject) {
  for (size_t i = 0; i < parents_.size(); i++) {
    if (parents_[i] != from) continue;
    from->children_.erase(this);
    parents_.erase(parents_.begin() + static_cast<long>(i));
    break;
  }
  // the old parent's JS reference is dropped with the others at close; a
  // stale extra reference only delays its GC, never frees early
  Adopt(to, toObject);
}

void Resource::Close() {
  if (closed_) return;
  closed_ = true;
  // children first (copy: they unlink themselves from children_)
  std::vector<Resource*> kids(children_.begin(), children_.end());
  for (auto it = kids.rbegin(); it != kids.rend(); ++it) (*it)->Close();
  Release();
  std::vector<Resource*> parents;
  parents.swap(parents_);
  for (Resource* p : parents) p->children_.erase(this);
  if (instance_) {
    instance_->live.remove(this);
    instance_ = nullptr;
  }
  // a parent may close itself once its last child is gone (a removed device does); our JS
  // references keep the parents alive until after this
  for (Resource* p : parents) p->OnChildClosed();
  for (auto& r : parentRefs_) r.Reset();
  parentRefs_.clear();
}

static void Cleanup(InstanceData* data) {
  data->tearingDown = true;
  if (data->idle) {
    uv_idle_stop(data->idle);
    uv_close(reinterpret_cast<uv_handle_t*>(data->idle), [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    data->idle = nullptr;
  }
  Resource::in_finalizer = true;  // no JS at teardown
  // At env teardown nothing can receive an error; an exception escaping a cleanup hook would
  // terminate the process. A node whose Close() threw is unlinked so the loop moves on.
  while (!data->live.empty()) {
    Resource* r = data->live.back();
    try {
      r->Close();
    } catch (...) {
    }
    if (!data->live.empty() && data->live.back() == r) data->live.pop_back();
  }
  Resource::in_finalizer = false;
}

InstanceData* Instance(Napi::Env env) { return env.GetInstanceData<InstanceData>(); }

// ---- arguments ------------------------------------------------------------

uint32_t ValueU32(Napi::Env env, Napi::Value v, const char* name) {
  if (!v.IsNumber()) ThrowType(env, std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
    ThrowRange(env, std::string(name) + " must be an integer in [0, 2^32)");
  return static_cast<uint32_t>(d);
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return ValueU32(info.Env(), info[i], name);
}

uint32_t OptU32(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t dflt) {
  if (i >= info.Length() || info[i].IsUndefined()) return dflt;
  return ValueU32(info.Env(), info[i], name);
}

uint64_t ValueU64(Napi::Env env, Napi::Value v, const char* name) {
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t x = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) ThrowRange(env, std::string(name) + " must fit in 64 bits unsigned");
    return x;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
      ThrowRange(env, std::string(name) + " must be a safe non-negative integer");
    return static_cast<uint64_t>(d);
  }
  ThrowType(env, std::string(name) + " must be a bigint or a number");
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return ValueU64(info.Env(), info[i], name);
}

std::vector<uint8_t> OptBytes(Napi::Env env, Napi::Value v, const char* name, size_t max) {
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() && !v.IsArrayBuffer())
    ThrowType(env, std::string(name) + " must be a Uint8Array");
  const uint8_t* p;
  size_t len;
  if (v.IsArrayBuffer()) {
    auto ab = v.As<Napi::ArrayBuffer>();
    p = static_cast<const uint8_t*>(ab.Data());
    len = ab.ByteLength();
  } else {
    auto ta = v.As<Napi::TypedArray>();
    p = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    len = ta.ByteLength();
  }
  if (len > max) ThrowRange(env, std::string(name) + " is longer than " + std::to_string(max) + " bytes");
  return std::vector<uint8_t>(p, p + len);
}

Napi::Buffer<uint8_t> CopyBytes(Napi::Env env, const void* data, size_t len) {
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(data), len);
}

// ---- libuv ----------------------------------------------------------------

int SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return errno;
  return 0;
}

int Poll::Start(Napi::Env env, int fd, Callback cb, bool keepAlive) {
  Stop();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return UV_EINVAL;
  auto* h = new Handle{};
  h->cb = std::move(cb);
  int rc = uv_poll_init(loop, &h->poll, fd);
  if (rc != 0) {
    delete h;
    return rc;
  }
  h->poll.data = h;
  rc = uv_poll_start(&h->poll, UV_READABLE, [](uv_poll_t* p, int status, int) {
    auto* hh = static_cast<Handle*>(p->data);
    if (status < 0 && status != UV_EBADF) return;
    Callback cb = hh->cb;  // the callback may Stop() (and so free) this handle
    // A JS call that fails because the env is being torn down (worker.terminate()
    // between CanCallJs() and the call) throws: nothing more to deliver then.
    try {
      if (cb) cb();
    } catch (const Napi::Error&) {
    }
  });
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), [](uv_handle_t* p) { delete static_cast<Handle*>(p->data); });
    return rc;
  }
  if (!keepAlive) uv_unref(reinterpret_cast<uv_handle_t*>(&h->poll));
  handle_ = h;
  return 0;
}

void Poll::Stop() {
  if (!handle_) return;
  Handle* h = handle_;
  handle_ = nullptr;
  h->cb = nullptr;
  uv_poll_stop(&h->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), [](uv_handle_t* p) { delete static_cast<Handle*>(p->data); });
}

bool CanCallJs(Napi::Env env) {
  // A worker being terminated still runs libuv callbacks, but every N-API call
  // that would run JS fails then, and node-addon-api turns that failure into a
  // fatal error. napi_set_element checks the same condition and only returns a
  // status: probe with it first, on one kept array (cheaper than a new object
  // and property name on every wakeup).
  InstanceData* d = nullptr;
  napi_value probe, u;
  if (napi_get_instance_data(env, reinterpret_cast<void**>(&d)) != napi_ok || !d) return false;
  if (!d->probe) {
    napi_value a;
    if (napi_create_array(env, &a) != napi_ok || napi_create_reference(env, a, 1, &d->probe) != napi_ok) return false;
  }
  if (napi_get_reference_value(env, d->probe, &probe) != napi_ok || !probe || napi_get_undefined(env, &u) != napi_ok) return false;
  return napi_set_element(env, probe, 0, u) == napi_ok;
}

void CallJs(Napi::Env env, const Napi::FunctionReference& fn, const std::vector<napi_value>& args) {
  if (fn.IsEmpty()) return;
  // The raw call: node-addon-api's MakeCallback turns a failure into a C++
  // exception, and while a worker env is being terminated building that
  // exception itself aborts the process (Error::Error napi_define_properties).
  napi_value global, result;
  if (napi_get_global(env, &global) != napi_ok) return;
  napi_status st = napi_make_callback(env, nullptr, global, fn.Value(), args.size(), args.data(), &result);
  if (st == napi_ok) return;
  napi_value err;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending && napi_get_and_clear_last_exception(env, &err) == napi_ok &&
      CanCallJs(env))
    napi_fatal_exception(env, err);  // the handler threw: 'uncaughtException', as node does
}

// ---- module ---------------------------------------------------------------

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new InstanceData();
  data->env = env;
  env.SetInstanceData(data);  // deleted by the default finalizer at env teardown
  env.AddCleanupHook([data]() { Cleanup(data); });
  exports.Set("available", Napi::Boolean::New(env, true));
  exports.Set("withRdmaCore", Napi::Boolean::New(env, true));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  InitDevice(env, exports, data);
  InitMemory(env, exports, data);
  InitCq(env, exports, data);
  InitQp(env, exports, data);
  InitCm(env, exports, data);
  InitCrc32c(env, exports);
  return exports;
}

NODE_API_MODULE(smbdirect_native, Init)

}  // namespace smbdirect
