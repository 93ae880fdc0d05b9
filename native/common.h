// Shared pieces of the verbs/rdma_cm binding: the resource tree every native
// object lives in, libuv poll handles, and errno-style JS errors.
#pragma once

#include <napi.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <unordered_map>
#include <set>
#include <string>
#include <vector>

namespace smbdirect {

// ---- errors ---------------------------------------------------------------

const char* ErrnoName(int err);

// Error with code (errno name), errno and syscall, like node's own system errors.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);
// Misuse from JS: TypeError / RangeError / Error with a stable code (each an instance of the
// class given to setErrorClass instead, once one is).
[[noreturn]] void ThrowType(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& msg);
[[noreturn]] void ThrowCode(Napi::Env env, const char* code, const std::string& msg);

// ---- resources ------------------------------------------------------------

struct InstanceData;
class MemoryRegion;
class CompletionQueue;

// Every native object is a node in a tree (a DAG: a QP has a PD, two CQs and a
// cm_id as parents). Closing a node closes its children first, so teardown
// order is always QP, CQ, channel, MR, PD, cm_id, event channel, device.
// Close() is idempotent and runs from JS, from the finalizer, from a parent's
// Close() and from the environment cleanup hook.
class Resource {
 public:
  Resource();
  virtual ~Resource();
  void Close();
  bool closed() const { return closed_; }
  uint32_t id() const { return id_; }
  // Makes `parent` close this resource first; holds a JS reference to the
  // parent (when given) so it outlives this child.
  void Adopt(Resource* parent, Napi::Object parentObject);
  void Adopt(Resource* parent);
  void AdoptOnce(Resource* parent, Napi::Object parentObject) {
    if (!parent->children_.count(this)) Adopt(parent, parentObject);
  }
  // Moves this node from one parent to another (rdma_migrate_id).
  void Reparent(Resource* from, Resource* to, Napi::Object toObject);
  // During GC finalization no JS may run (no detaching of ArrayBuffers).
  static thread_local bool in_finalizer;  // per thread: worker threads have their own GC

 protected:
  virtual void Release() = 0;  // free the native object; called exactly once
  // A child of this node has closed (it is no longer among the children).
  virtual void OnChildClosed() {}
  bool hasChildren() const { return !children_.empty(); }
  void Register(Napi::Env env);

 private:
  bool closed_ = false;
  uint32_t id_;
  InstanceData* instance_ = nullptr;
  std::set<Resource*> children_;
  std::vector<Resource*> parents_;
  std::vector<Napi::ObjectReference> parentRefs_;
};

struct InstanceData {
  std::list<Resource*> live;  // creation order; closed newest first at env teardown
  Napi::FunctionReference device, pd, mr, mw, channel, cq, qp, eventChannel, cmId;
  // The class errors are thrown as (setErrorClass: the providers' RdmaError, constructed as
  // new cls(code, message)); empty: Error, TypeError, RangeError with a code, as node's own.
  Napi::FunctionReference errorClass;
  std::map<void*, Resource*> devices;  // ibv_context -> its one open Device
  // Live memory regions by handle (their Resource id), for the fast posts that name a region
  // by number instead of by object (no property reads or instanceof per work request).
  std::unordered_map<uint32_t, MemoryRegion*> mrs;
  napi_ref probe = nullptr;  // CanCallJs's array (kept for the env's life)
  uint32_t nextId = 1;
  bool tearingDown = false;
  napi_env env = nullptr;
  // CQs whose drain stopped at its per-wakeup budget: drained again from an idle handle on the next
  // loop iteration, after timers and other I/O had their turn (each holds a reference while here).
  std::set<CompletionQueue*> deferredCqs;
  uv_idle_t* idle = nullptr;
};
InstanceData* Instance(Napi::Env env);

// Base for the JS-visible classes: ObjectWrap + Resource, with finalizer close.
template <typename T>
class Wrapped : public Napi::ObjectWrap<T>, public Resource {
 public:
  explicit Wrapped(const Napi::CallbackInfo& info) : Napi::ObjectWrap<T>(info) {
    Register(info.Env());
  }
  void Finalize(Napi::Env) override {
    in_finalizer = true;
    // Nothing can report an error from a finalizer; a C++ exception escaping it (an N-API call
    // failing while a worker env is torn down) would terminate the process.
    try {
      Close();
    } catch (...) {
    }
    in_finalizer = false;
  }
  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }
  Napi::Value JsClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), closed()); }
  Napi::Value JsId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id()); }
  // The class's own properties plus closed / id / close().
  using Props = std::vector<Napi::ClassPropertyDescriptor<T>>;
  static Props Common(Props own) {
    using Method = Napi::Value (T::*)(const Napi::CallbackInfo&);
    own.push_back(Napi::ObjectWrap<T>::InstanceAccessor("closed", static_cast<Method>(&Wrapped::JsClosed), nullptr));
    own.push_back(Napi::ObjectWrap<T>::InstanceAccessor("id", static_cast<Method>(&Wrapped::JsId), nullptr));
    own.push_back(Napi::ObjectWrap<T>::InstanceMethod("close", static_cast<Method>(&Wrapped::JsClose)));
    return own;
  }
  void CheckOpen(Napi::Env env, const char* what) const {
    if (closed()) ThrowCode(env, "ERR_CLOSED", std::string(what) + " is closed");
  }
};

// Unwraps args[i] as T (an open instance); typed errors otherwise.
template <typename T>
T* UnwrapArg(Napi::Env env, Napi::Value v, const Napi::FunctionReference& ctor, const char* what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor.Value()))
    ThrowType(env, std::string("expected a ") + what);
  T* t = Napi::ObjectWrap<T>::Unwrap(v.As<Napi::Object>());
  t->CheckOpen(env, what);
  return t;
}

// The classes are made by native code only: their constructor's first argument is an External.
template <typename T>
T* CtorArg(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsExternal())
    ThrowType(info.Env(), std::string(what) + " is not constructible from JS");
  return info[0].As<Napi::External<T>>().Data();
}

// ---- argument helpers -----------------------------------------------------

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
uint32_t OptU32(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t dflt);
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* name);  // number or bigint
uint64_t ValueU64(Napi::Env env, Napi::Value v, const char* name);
uint32_t ValueU32(Napi::Env env, Napi::Value v, const char* name);
std::vector<uint8_t> OptBytes(Napi::Env env, Napi::Value v, const char* name, size_t max);
Napi::Buffer<uint8_t> CopyBytes(Napi::Env env, const void* data, size_t len);

// ---- libuv ----------------------------------------------------------------

// A uv_poll_t on the env's own loop (never uv_default_loop). The handle memory
// is freed by uv_close's callback, so stopping from inside the callback is safe.
class Poll {
 public:
  using Callback = std::function<void()>;
  Poll() = default;
  ~Poll() { Stop(); }
  Poll(const Poll&) = delete;
  Poll& operator=(const Poll&) = delete;
  // Readable events; returns a uv error. keepAlive=false: the handle does not
  // keep the loop alive (a device's async events must not hold a process open).
  int Start(Napi::Env env, int fd, Callback cb, bool keepAlive = true);
  void Stop();
  bool active() const { return handle_ != nullptr; }

 private:
  struct Handle {
    uv_poll_t poll;
    Callback cb;
  };
  Handle* handle_ = nullptr;
};

int SetNonBlocking(int fd);

// Calls a JS function from a libuv callback: handle scope, microtasks after,
// an exception thrown by the callback goes to process 'uncaughtException'.
void CallJs(Napi::Env env, const Napi::FunctionReference& fn, const std::vector<napi_value>& args);
// False while the env cannot run JS (a worker thread being terminated): libuv
// callbacks then leave their events for the env cleanup hook.
bool CanCallJs(Napi::Env env);

// ---- classes (defined in their own files) ---------------------------------

void InitDevice(Napi::Env env, Napi::Object exports, InstanceData* data);
void InitMemory(Napi::Env env, Napi::Object exports, InstanceData* data);
void InitCq(Napi::Env env, Napi::Object exports, InstanceData* data);
void InitQp(Napi::Env env, Napi::Object exports, InstanceData* data);
void InitCm(Napi::Env env, Napi::Object exports, InstanceData* data);
void InitCrc32c(Napi::Env env, Napi::Object exports);

}  // namespace smbdirect
