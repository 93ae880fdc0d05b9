// The JS classes of the binding. Each wraps one verbs/rdma_cm object.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "common.h"

namespace smbdirect {

class Device : public Wrapped<Device> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Device(const Napi::CallbackInfo& info);
  ibv_context* ctx() const { return ctx_; }
  // Used by CmId: the one Device object for a context (opened on demand).
  static Napi::Object ForContext(Napi::Env env, ibv_context* ctx);
  // openDevice(name): the env's open Device of that name, else the device as librdmacm lists it now.
  static Napi::Value Open(Napi::Env env, const std::string& name);
  // rdma_cm reported DEVICE_REMOVAL for an id on ctx: this env's Device of it closes as soon as it
  // has no children left (at once if it has none), so librdmacm can close the context and the
  // kernel's unregistration, which waits for that, can finish.
  static void NoteRemoved(Napi::Env env, ibv_context* ctx);

 private:
  static Napi::Object New(Napi::Env env, ibv_context* ctx, ibv_context** ref);
  void Release() override;
  void OnChildClosed() override;
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value QueryPort(const Napi::CallbackInfo& info);
  Napi::Value QueryGid(const Napi::CallbackInfo& info);
  Napi::Value AllocPd(const Napi::CallbackInfo& info);
  Napi::Value CreateCompChannel(const Napi::CallbackInfo& info);
  Napi::Value CreateCq(const Napi::CallbackInfo& info);
  Napi::Value OnAsyncEvent(const Napi::CallbackInfo& info);
  void DrainAsync();

  ibv_context* ctx_ = nullptr;  // owned by librdmacm (rdma_get_devices): never closed here
  ibv_context** ref_ = nullptr;  // our one librdmacm reference on ctx_, given back at close
  bool removed_ = false;         // the device is being removed (DEVICE_REMOVAL)
  std::string name_;
  Poll asyncPoll_;
  Napi::FunctionReference onAsync_;
  Napi::Env env_;
};

class ProtectionDomain : public Wrapped<ProtectionDomain> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ProtectionDomain(const Napi::CallbackInfo& info);
  ibv_pd* pd() const { return pd_; }
  Device* device() const { return device_; }

 private:
  void Release() override;
  Napi::Value AllocSlab(const Napi::CallbackInfo& info);
  Napi::Value RegisterBuffer(const Napi::CallbackInfo& info);
  Napi::Value AllocMw(const Napi::CallbackInfo& info);
  ibv_pd* pd_ = nullptr;
  Device* device_ = nullptr;
};

// Native page-aligned memory shared by an MR and the external ArrayBuffer
// over it: freed when both the registration and the ArrayBuffer are gone.
struct Slab {
  void* mem = nullptr;
  size_t len = 0;
  int refs = 0;
  void Unref();
};

class MemoryRegion : public Wrapped<MemoryRegion> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit MemoryRegion(const Napi::CallbackInfo& info);
  ibv_mr* mr() const { return mr_; }
  ProtectionDomain* pd() const { return pd_; }
  size_t length() const { return length_; }
  uint8_t* base() const { return static_cast<uint8_t*>(mr_->addr); }

 private:
  friend class ProtectionDomain;
  void Release() override;
  Napi::Value Buffer(const Napi::CallbackInfo& info);
  Napi::Value Addr(const Napi::CallbackInfo& info);
  Napi::Value Lkey(const Napi::CallbackInfo& info);
  Napi::Value Rkey(const Napi::CallbackInfo& info);
  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Handle(const Napi::CallbackInfo& info);
  ibv_mr* mr_ = nullptr;
  InstanceData* data_ = nullptr;  // holds our entry in data_->mrs while registered
  ProtectionDomain* pd_ = nullptr;
  Slab* slab_ = nullptr;                 // native slab, or
  Napi::Reference<Napi::ArrayBuffer> buffer_;  // the ArrayBuffer (slab's external one or a JS one)
  size_t length_ = 0;
  uint64_t addr_ = 0;
  uint32_t lkey_ = 0, rkey_ = 0;
};

class MemoryWindow : public Wrapped<MemoryWindow> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit MemoryWindow(const Napi::CallbackInfo& info);
  ibv_mw* mw() const { return mw_; }
  ProtectionDomain* pd() const { return pd_; }

 private:
  friend class ProtectionDomain;
  void Release() override;
  Napi::Value Rkey(const Napi::CallbackInfo& info);
  ibv_mw* mw_ = nullptr;
  ProtectionDomain* pd_ = nullptr;
};

class CompletionQueue;

class CompletionChannel : public Wrapped<CompletionChannel> {
 public:
  smbdirect::Poll poll_;                     // one uv_poll per fd, shared by its CQs
  std::set<CompletionQueue*> pending_;       // CQs with an event not yet drained

  static Napi::Function Define(Napi::Env env);
  explicit CompletionChannel(const Napi::CallbackInfo& info);
  ibv_comp_channel* channel() const { return ch_; }
  Device* device() const { return device_; }

 private:
  friend class Device;
  void Release() override;
  Napi::Value Fd(const Napi::CallbackInfo& info);
  ibv_comp_channel* ch_ = nullptr;
  Device* device_ = nullptr;
};

class CompletionQueue : public Wrapped<CompletionQueue> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CompletionQueue(const Napi::CallbackInfo& info);
  ibv_cq* cq() const { return cq_; }
  Device* device() const { return device_; }
  static constexpr int kBatch = 64;
  void NoteEvent();
  void DrainFromEvent(Napi::Env env);
  // Drains again what a drain left at its budget (the env's idle handle).
  static void RunDeferred(InstanceData* d);

 private:
  friend class Device;
  void Release() override;
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value Batch(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Cqe(const Napi::CallbackInfo& info);
  Napi::Value CompVector(const Napi::CallbackInfo& info);
  void OnChannelReadable();
  int PollBatch();  // fills the struct-of-arrays, returns count (or -errno)
  uint32_t Drain(Napi::Env env, bool rearm);
  void Defer(Napi::Env env);

  ibv_cq* cq_ = nullptr;
  Device* device_ = nullptr;
  CompletionChannel* channel_ = nullptr;
  int compVector_ = 0;
  bool rxeFlags_ = false;  // see PollBatch
  smbdirect::Poll poll_;
  Napi::FunctionReference onBatch_;
  Napi::Reference<Napi::Object> batch_;  // the typed arrays over soa_
  struct Soa {                            // struct-of-arrays, one ArrayBuffer
    double wrId[kBatch];
    uint32_t status[kBatch], opcode[kBatch], byteLen[kBatch], qpNum[kBatch];
    uint32_t immOrInv[kBatch], flags[kBatch], vendorErr[kBatch], srcQp[kBatch];
  };
  Soa* soa_ = nullptr;
  unsigned unacked_ = 0;
  bool delivering_ = false;
  uint64_t events_ = 0, polls_ = 0, completions_ = 0, batches_ = 0;
};

class QueuePair : public Wrapped<QueuePair> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit QueuePair(const Napi::CallbackInfo& info);
  ibv_qp* qp() const { return qp_; }

 private:
  friend class CmId;
  void Release() override;
  Napi::Value QpNum(const Napi::CallbackInfo& info);
  Napi::Value Query(const Napi::CallbackInfo& info);
  Napi::Value ToError(const Napi::CallbackInfo& info);
  Napi::Value SetMinRnrTimer(const Napi::CallbackInfo& info);
  Napi::Value PostRecv(const Napi::CallbackInfo& info);
  Napi::Value PostSend(const Napi::CallbackInfo& info);
  Napi::Value PostStaged(const Napi::CallbackInfo& info);
  Napi::Value SendStage(const Napi::CallbackInfo& info);
  Napi::Value RecvStage(const Napi::CallbackInfo& info);
  Napi::Value PostWrite(const Napi::CallbackInfo& info);
  Napi::Value PostRead(const Napi::CallbackInfo& info);
  Napi::Value PostBindMw(const Napi::CallbackInfo& info);
  Napi::Value PostLocalInvalidate(const Napi::CallbackInfo& info);
  void Post(Napi::Env env, ibv_send_wr* wr);
  int Sgl(Napi::Env env, Napi::Value v, ibv_sge* out, uint32_t max);
  int StagedSge(Napi::Env env, const double* row, ibv_sge* sge);
  void DataWr(const Napi::CallbackInfo& info, ibv_send_wr* wr, ibv_sge* sge);

  ibv_qp* qp_ = nullptr;
  rdma_cm_id* cmId_ = nullptr;  // the QP belongs to this cm_id (rdma_create_qp)
  ProtectionDomain* pd_ = nullptr;
  uint32_t maxSendSge_ = 0, maxRecvSge_ = 0, maxSgeRd_ = 0;
  // The staging rows JS fills for PostStaged (V8-owned memory, held while the QP lives).
  Napi::Reference<Napi::Float64Array> sendStage_, recvStage_;
  double* sendRows_ = nullptr;
  double* recvRows_ = nullptr;
};

class EventChannel : public Wrapped<EventChannel> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EventChannel(const Napi::CallbackInfo& info);
  rdma_event_channel* channel() const { return ch_; }

 private:
  friend class CmId;
  void Release() override;
  Napi::Value CreateId(const Napi::CallbackInfo& info);
  Napi::Value AdoptId(const Napi::CallbackInfo& info);
  Napi::Value Fd(const Napi::CallbackInfo& info);
  void Drain();
  rdma_event_channel* ch_ = nullptr;
  smbdirect::Poll poll_;
  Napi::FunctionReference onEvents_;
  Napi::Env env_;
};

class CmId : public Wrapped<CmId> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CmId(const Napi::CallbackInfo& info);
  rdma_cm_id* id() const { return id_; }
  static Napi::Object Wrap(Napi::Env env, rdma_cm_id* id, EventChannel* ch);

 private:
  void Release() override;
  Napi::Value ResolveAddr(const Napi::CallbackInfo& info);
  Napi::Value ResolveRoute(const Napi::CallbackInfo& info);
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Reject(const Napi::CallbackInfo& info);
  Napi::Value Disconnect(const Napi::CallbackInfo& info);
  Napi::Value CreateQp(const Napi::CallbackInfo& info);
  Napi::Value Migrate(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value PortNum(const Napi::CallbackInfo& info);
  Napi::Value LocalAddress(const Napi::CallbackInfo& info);
  Napi::Value PeerAddress(const Napi::CallbackInfo& info);
  Napi::Value Qp(const Napi::CallbackInfo& info);

  rdma_cm_id* id_ = nullptr;
  EventChannel* channel_ = nullptr;
  QueuePair* qp_ = nullptr;
  Napi::ObjectReference qpObject_;
};

}  // namespace smbdirect
