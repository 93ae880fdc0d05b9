// Protection domains, memory regions (native slabs and whole JS ArrayBuffers)
// and type-2 memory windows.
#include <sys/mman.h>

#include "objects.h"

namespace smbdirect {

static const int kAccessMask = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ |
                               IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_MW_BIND | IBV_ACCESS_ZERO_BASED;

static int AccessArg(const Napi::CallbackInfo& info, size_t i) {
  uint32_t a = ArgU32(info, i, "access");
  if (a & ~static_cast<uint32_t>(kAccessMask)) ThrowRange(info.Env(), "access has unknown flag bits");
  // remote write needs local write (verbs rule); say so instead of EINVAL
  if ((a & IBV_ACCESS_REMOTE_WRITE) && !(a & IBV_ACCESS_LOCAL_WRITE))
    ThrowRange(info.Env(), "access: remoteWrite requires localWrite");
  return static_cast<int>(a);
}

void Slab::Unref() {
  if (--refs > 0) return;
  if (mem) munmap(mem, len);
  delete this;
}

// ---- ProtectionDomain -----------------------------------------------------

ProtectionDomain::ProtectionDomain(const Napi::CallbackInfo& info) : Wrapped(info) {
  pd_ = CtorArg<ibv_pd>(info, "ProtectionDomain");
  device_ = UnwrapArg<Device>(info.Env(), info[1], Instance(info.Env())->device, "Device");
  Adopt(device_, info[1].As<Napi::Object>());
}

void ProtectionDomain::Release() {
  if (pd_) ibv_dealloc_pd(pd_);
  pd_ = nullptr;
}

struct MrInit {
  ibv_mr* mr;
  Slab* slab;
};

// allocSlab(size, access): page-aligned native memory, registered; its
// buffer is an external ArrayBuffer that is detached when the MR closes.
Napi::Value ProtectionDomain::AllocSlab(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "ProtectionDomain");
  double size = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!info[0].IsNumber()) ThrowType(env, "size must be a number");
  if (!(size >= 1 && size <= 4294967296.0) || size != static_cast<double>(static_cast<uint64_t>(size)))
    ThrowRange(env, "size must be an integer in [1, 4 GiB]");
  int access = AccessArg(info, 1);
  auto* slab = new Slab();
  slab->len = static_cast<size_t>(size);
  slab->mem = mmap(nullptr, slab->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (slab->mem == MAP_FAILED) {
    int err = errno;
    delete slab;
    ThrowErrno(env, err, "mmap");
  }
  ibv_mr* mr = ibv_reg_mr(pd_, slab->mem, slab->len, access);
  if (!mr) {
    int err = errno;
    munmap(slab->mem, slab->len);
    delete slab;
    ThrowErrno(env, err, "ibv_reg_mr");
  }
  MrInit init{mr, slab};
  return Instance(env)->mr.New({Napi::External<MrInit>::New(env, &init), Value()});
}

// registerBuffer(arrayBufferOrView, access): a whole JS ArrayBuffer (not a
// slice of a pool), kept referenced until the MR closes.
Napi::Value ProtectionDomain::RegisterBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "ProtectionDomain");
  Napi::ArrayBuffer ab;
  if (info[0].IsArrayBuffer()) {
    ab = info[0].As<Napi::ArrayBuffer>();
  } else if (info[0].IsTypedArray() || info[0].IsDataView()) {
    size_t off, len;
    if (info[0].IsTypedArray()) {
      auto ta = info[0].As<Napi::TypedArray>();
      ab = ta.ArrayBuffer();
      off = ta.ByteOffset();
      len = ta.ByteLength();
    } else {
      auto dv = info[0].As<Napi::DataView>();
      ab = dv.ArrayBuffer();
      off = dv.ByteOffset();
      len = dv.ByteLength();
    }
    if (off != 0 || len != ab.ByteLength())
      ThrowRange(env, "registerBuffer needs a view over a whole ArrayBuffer (not a pooled slice); use allocSlab or Buffer.alloc");
  } else {
    ThrowType(env, "buffer must be an ArrayBuffer or a view over one");
  }
  if (ab.ByteLength() == 0) ThrowRange(env, "cannot register an empty buffer");
  int access = AccessArg(info, 1);
  ibv_mr* mr = ibv_reg_mr(pd_, ab.Data(), ab.ByteLength(), access);
  if (!mr) ThrowErrno(env, errno, "ibv_reg_mr");
  MrInit init{mr, nullptr};
  return Instance(env)->mr.New({Napi::External<MrInit>::New(env, &init), Value(), ab});
}

Napi::Value ProtectionDomain::AllocMw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "ProtectionDomain");
  ibv_mw* mw = ibv_alloc_mw(pd_, IBV_MW_TYPE_2);
  if (!mw) ThrowErrno(env, errno ? errno : EOPNOTSUPP, "ibv_alloc_mw");
  return Instance(env)->mw.New({Napi::External<ibv_mw>::New(env, mw), Value()});
}

Napi::Function ProtectionDomain::Define(Napi::Env env) {
  return DefineClass(env, "ProtectionDomain", Common({
      InstanceMethod<&ProtectionDomain::AllocSlab>("allocSlab"),
      InstanceMethod<&ProtectionDomain::RegisterBuffer>("registerBuffer"),
      InstanceMethod<&ProtectionDomain::AllocMw>("allocMw"),
  }));
}

// ---- MemoryRegion ---------------------------------------------------------

MemoryRegion::MemoryRegion(const Napi::CallbackInfo& info) : Wrapped(info) {
  Napi::Env env = info.Env();
  MrInit* init = CtorArg<MrInit>(info, "MemoryRegion");
  mr_ = init->mr;
  slab_ = init->slab;
  pd_ = UnwrapArg<ProtectionDomain>(env, info[1], Instance(env)->pd, "ProtectionDomain");
  Adopt(pd_, info[1].As<Napi::Object>());
  length_ = mr_->length;
  addr_ = reinterpret_cast<uintptr_t>(mr_->addr);
  lkey_ = mr_->lkey;
  rkey_ = mr_->rkey;
  data_ = Instance(env);
  data_->mrs[id()] = this;
  if (slab_) {
    slab_->refs = 2;  // this MR + the ArrayBuffer's finalizer
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, slab_->mem, slab_->len,
                                                  [](Napi::Env, void*, Slab* s) { s->Unref(); }, slab_);
    buffer_ = Napi::Persistent(ab);
  } else {
    buffer_ = Napi::Persistent(info[2].As<Napi::ArrayBuffer>());
  }
}

void MemoryRegion::Release() {
  if (data_) data_->mrs.erase(id());
  data_ = nullptr;
  if (mr_) ibv_dereg_mr(mr_);
  mr_ = nullptr;
  if (slab_) {
    // Detach so JS can no longer reach the memory, then free it now. In a
    // finalizer no JS may run: the ArrayBuffer's own finalizer frees it.
    if (!in_finalizer && !buffer_.IsEmpty()) {
      Napi::HandleScope scope(buffer_.Env());
      Napi::ArrayBuffer ab = buffer_.Value();
      if (!ab.IsDetached()) ab.Detach();
      munmap(slab_->mem, slab_->len);
      slab_->mem = nullptr;
    }
    slab_->Unref();
    slab_ = nullptr;
  }
  buffer_.Reset();
}

Napi::Value MemoryRegion::Buffer(const Napi::CallbackInfo& info) {
  if (buffer_.IsEmpty()) ThrowCode(info.Env(), "ERR_CLOSED", "MemoryRegion is closed");
  return buffer_.Value();
}
Napi::Value MemoryRegion::Addr(const Napi::CallbackInfo& info) { return Napi::BigInt::New(info.Env(), addr_); }
Napi::Value MemoryRegion::Lkey(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), lkey_); }
Napi::Value MemoryRegion::Rkey(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), rkey_); }
Napi::Value MemoryRegion::Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(length_)); }
Napi::Value MemoryRegion::Handle(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id()); }

Napi::Function MemoryRegion::Define(Napi::Env env) {
  return DefineClass(env, "MemoryRegion", Common({
      InstanceAccessor<&MemoryRegion::Buffer>("buffer"),
      InstanceAccessor<&MemoryRegion::Addr>("addr"),
      InstanceAccessor<&MemoryRegion::Lkey>("lkey"),
      InstanceAccessor<&MemoryRegion::Rkey>("rkey"),
      InstanceAccessor<&MemoryRegion::Length>("length"),
      InstanceAccessor<&MemoryRegion::Handle>("handle"),
  }));
}

// ---- MemoryWindow ---------------------------------------------------------

MemoryWindow::MemoryWindow(const Napi::CallbackInfo& info) : Wrapped(info) {
  mw_ = CtorArg<ibv_mw>(info, "MemoryWindow");
  pd_ = UnwrapArg<ProtectionDomain>(info.Env(), info[1], Instance(info.Env())->pd, "ProtectionDomain");
  Adopt(pd_, info[1].As<Napi::Object>());
}

void MemoryWindow::Release() {
  if (mw_) ibv_dealloc_mw(mw_);
  mw_ = nullptr;
}

Napi::Value MemoryWindow::Rkey(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), mw_ ? mw_->rkey : 0);
}

Napi::Function MemoryWindow::Define(Napi::Env env) {
  return DefineClass(env, "MemoryWindow", Common({
      InstanceAccessor<&MemoryWindow::Rkey>("rkey"),
  }));
}

void InitMemory(Napi::Env env, Napi::Object exports, InstanceData* data) {
  Napi::Function pd = ProtectionDomain::Define(env), mr = MemoryRegion::Define(env), mw = MemoryWindow::Define(env);
  data->pd = Napi::Persistent(pd);
  data->mr = Napi::Persistent(mr);
  data->mw = Napi::Persistent(mw);
  exports.Set("ProtectionDomain", pd);
  exports.Set("MemoryRegion", mr);
  exports.Set("MemoryWindow", mw);
  Napi::Object access = Napi::Object::New(env);
  access.Set("LOCAL_WRITE", static_cast<int>(IBV_ACCESS_LOCAL_WRITE));
  access.Set("REMOTE_WRITE", static_cast<int>(IBV_ACCESS_REMOTE_WRITE));
  access.Set("REMOTE_READ", static_cast<int>(IBV_ACCESS_REMOTE_READ));
  access.Set("REMOTE_ATOMIC", static_cast<int>(IBV_ACCESS_REMOTE_ATOMIC));
  access.Set("MW_BIND", static_cast<int>(IBV_ACCESS_MW_BIND));
  access.Set("ZERO_BASED", static_cast<int>(IBV_ACCESS_ZERO_BASED));
  exports.Set("ACCESS", access);
}

}  // namespace smbdirect
