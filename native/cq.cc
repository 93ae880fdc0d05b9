// Completion queues on a chosen comp vector. The completion channel's fd is
// watched by one uv_poll (no busy loop, no thread); when it fires, every CQ
// with an event is drained in batches into a reused struct-of-arrays and each
// batch is one JS call. The CQ is re-armed before its final poll, so a
// completion that races the re-arm is still seen.
#include <cstddef>

#include "objects.h"

namespace smbdirect {

static constexpr unsigned kAckEvery = 64;
// Batches one wakeup delivers at most. A handler that posts more work from its completions keeps
// the CQ from ever running dry where the device completes work inside the post call (rxe runs a
// user QP's requester, and on loopback the responder, in the posting thread): an unbounded drain
// then never returned to the event loop, whose timers, rdma_cm events (DISCONNECTED,
// DEVICE_REMOVAL) and sockets starved. Past the budget the rest waits for the next loop iteration.
static constexpr unsigned kBatchesPerWakeup = 16;
static constexpr uint32_t kRxeVendorId = 0xffffff;
// rxe writes the kernel's ib_wc_flags into user CQEs unchanged (rxe_resp.c
// do_complete: IB_WC_WITH_INVALIDATE = 1 << 2, IB_WC_IP_CSUM_OK = 1 << 3), and
// libibverbs' rxe provider copies them out raw, but user space defines
// IBV_WC_IP_CSUM_OK = 1 << 2 and IBV_WC_WITH_INV = 1 << 3. Swap the two bits
// so a remote invalidation is visible as IBV_WC_WITH_INV.
static inline unsigned RxeFlags(unsigned f) {
  return (f & ~0xcu) | ((f & 0x4u) << 1) | ((f & 0x8u) >> 1);
}  // ibv_ack_cq_events takes a lock: batch it

// Channel-side dispatch lives here because it only serves CQs.
static void ChannelReadable(CompletionChannel* ch);

CompletionQueue::CompletionQueue(const Napi::CallbackInfo& info) : Wrapped(info) {
  Napi::Env env = info.Env();
  InstanceData* data = Instance(env);
  device_ = UnwrapArg<Device>(env, info[0], data->device, "Device");
  uint32_t cqe = ArgU32(info, 1, "cqe");
  if (cqe < 1) ThrowRange(env, "cqe must be at least 1");
  if (!info[2].IsNull() && !info[2].IsUndefined())
    channel_ = UnwrapArg<CompletionChannel>(env, info[2], data->channel, "CompletionChannel");
  if (channel_ && channel_->device() != device_) ThrowCode(env, "ERR_WRONG_DEVICE", "the completion channel belongs to another device");
  uint32_t vec = OptU32(info, 3, "compVector", 0);
  if (vec >= static_cast<uint32_t>(device_->ctx()->num_comp_vectors))
    ThrowRange(env, "compVector " + std::to_string(vec) + " is out of range: the device has " +
                        std::to_string(device_->ctx()->num_comp_vectors) + " comp vectors");
  compVector_ = static_cast<int>(vec);
  if (!info[4].IsUndefined() && !info[4].IsNull()) {
    if (!info[4].IsFunction()) ThrowType(env, "onBatch must be a function");
    onBatch_ = Napi::Persistent(info[4].As<Napi::Function>());
  }
  if (channel_ && onBatch_.IsEmpty()) ThrowType(env, "a CQ on a completion channel needs an onBatch handler");

  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, sizeof(Soa));
  soa_ = static_cast<Soa*>(ab.Data());
  Napi::Object batch = Napi::Object::New(env);
  batch.Set("wrId", Napi::Float64Array::New(env, kBatch, ab, offsetof(Soa, wrId)));
  batch.Set("status", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, status)));
  batch.Set("opcode", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, opcode)));
  batch.Set("byteLength", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, byteLen)));
  batch.Set("qpNum", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, qpNum)));
  batch.Set("immOrInvalidatedRkey", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, immOrInv)));
  batch.Set("flags", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, flags)));
  batch.Set("vendorErr", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, vendorErr)));
  batch.Set("srcQp", Napi::Uint32Array::New(env, kBatch, ab, offsetof(Soa, srcQp)));
  batch_ = Napi::Persistent(batch);

  ibv_cq* cq = ibv_create_cq(device_->ctx(), static_cast<int>(cqe), this, channel_ ? channel_->channel() : nullptr, compVector_);
  if (!cq) ThrowErrno(env, errno, "ibv_create_cq");
  if (channel_) {
    int rc = ibv_req_notify_cq(cq, 0);
    const char* call = "ibv_req_notify_cq";
    if (!rc && !channel_->poll_.active()) {
      CompletionChannel* ch = channel_;
      rc = -ch->poll_.Start(env, ch->channel()->fd, [ch]() { ChannelReadable(ch); });
      call = "uv_poll_start";
    }
    if (rc) {
      ibv_destroy_cq(cq);
      ThrowErrno(env, rc, call);
    }
  }
  cq_ = cq;
  ibv_device_attr da{};
  rxeFlags_ = ibv_query_device(device_->ctx(), &da) == 0 && da.vendor_id == kRxeVendorId;
  Adopt(device_, info[0].As<Napi::Object>());
  if (channel_) Adopt(channel_, info[2].As<Napi::Object>());
  // Held open until close(): completions may arrive with no JS reference left.
  if (channel_) Ref();
}

void CompletionQueue::Release() {
  if (InstanceData* d = Instance(Env())) {
    if (d->deferredCqs.erase(this) && !in_finalizer) Unref();  // the reference Defer() took
  }
  if (cq_) {
    if (unacked_) ibv_ack_cq_events(cq_, unacked_);
    unacked_ = 0;
    if (channel_) channel_->pending_.erase(this);
    ibv_destroy_cq(cq_);  // the QPs on it closed first (children)
    cq_ = nullptr;
  }
  onBatch_.Reset();
  batch_.Reset();
  soa_ = nullptr;
  if (channel_ && !in_finalizer) Unref();
}

int CompletionQueue::PollBatch() {
  ibv_wc wc[kBatch];
  polls_++;
  int n = ibv_poll_cq(cq_, kBatch, wc);
  if (n <= 0) return n;
  if (rxeFlags_)
    for (int i = 0; i < n; i++) wc[i].wc_flags = RxeFlags(wc[i].wc_flags);
  for (int i = 0; i < n; i++) {
    soa_->wrId[i] = static_cast<double>(wc[i].wr_id);
    soa_->status[i] = wc[i].status;
    soa_->opcode[i] = wc[i].opcode;
    soa_->byteLen[i] = wc[i].byte_len;
    soa_->qpNum[i] = wc[i].qp_num;
    soa_->immOrInv[i] = (wc[i].wc_flags & IBV_WC_WITH_IMM) ? be32toh(wc[i].imm_data)
                        : (wc[i].wc_flags & IBV_WC_WITH_INV) ? wc[i].invalidated_rkey : 0;
    soa_->flags[i] = wc[i].wc_flags;
    soa_->vendorErr[i] = wc[i].vendor_err;
    soa_->srcQp[i] = wc[i].src_qp;
  }
  completions_ += static_cast<uint64_t>(n);
  return n;
}

// Poll until empty, one JS call per batch; with rearm, request the next
// notification and poll once more to close the race with the re-arm.
uint32_t CompletionQueue::Drain(Napi::Env env, bool rearm) {
  uint32_t total = 0;
  unsigned budget = kBatchesPerWakeup;
  // The handler may close this CQ, which drops its keep-alive reference: hold
  // our own until the loop below stops touching `this`.
  Ref();
  delivering_ = true;
  for (;;) {
    int n = 0;
    while (!closed() && budget > 0 && (n = PollBatch()) > 0) {
      total += static_cast<uint32_t>(n);
      batches_++;
      budget--;
      CallJs(env, onBatch_, {Napi::Number::New(env, n)});
      if (n < kBatch) break;
    }
    if (closed() || !rearm) break;
    if (budget == 0) {
      // not re-armed: the deferred drain polls on, and re-arms once the CQ is empty
      Defer(env);
      break;
    }
    if (ibv_req_notify_cq(cq_, 0) != 0) break;
    n = PollBatch();
    if (n <= 0) break;
    total += static_cast<uint32_t>(n);
    batches_++;
    budget--;
    CallJs(env, onBatch_, {Napi::Number::New(env, n)});
  }
  delivering_ = false;
  Unref();
  return total;
}

void CompletionQueue::Defer(Napi::Env env) {
  InstanceData* d = Instance(env);
  if (!d || d->tearingDown) return;
  if (!d->idle) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) return;
    auto* idle = new uv_idle_t;
    if (uv_idle_init(loop, idle) != 0) {
      delete idle;
      return;
    }
    idle->data = d;
    d->idle = idle;
  }
  if (d->deferredCqs.insert(this).second) Ref();  // kept alive until drained (or closed)
  uv_idle_start(d->idle, [](uv_idle_t* h) { RunDeferred(static_cast<InstanceData*>(h->data)); });
}

void CompletionQueue::RunDeferred(InstanceData* d) {
  uv_idle_stop(d->idle);
  Napi::Env env(d->env);
  Napi::HandleScope scope(env);
  if (!CanCallJs(env)) return;  // a terminating worker: its cleanup closes the CQs
  // this round's CQs; one that stops at its budget again joins the next round
  std::vector<CompletionQueue*> round(d->deferredCqs.begin(), d->deferredCqs.end());
  d->deferredCqs.clear();
  for (CompletionQueue* cq : round) {
    try {
      if (!cq->closed()) cq->Drain(env, true);
    } catch (const Napi::Error&) {
    }
    cq->Unref();  // the reference Defer() took
  }
}

static void ChannelReadable(CompletionChannel* ch) {
  Napi::Env env = ch->Env();
  Napi::HandleScope scope(env);
  if (!CanCallJs(env)) return;
  ch->Ref();  // handlers may close (and release) the channel while we loop
  ibv_cq* evcq;
  void* ctx;
  // One event per wakeup: the poll is level-triggered, so a second pending
  // event wakes us again, and the common case saves a read() that would
  // only return EAGAIN.
  if (ibv_get_cq_event(ch->channel(), &evcq, &ctx) == 0) static_cast<CompletionQueue*>(ctx)->NoteEvent();
  // Drain each CQ that had an event. A handler may close CQs or the channel.
  while (!ch->closed() && !ch->pending_.empty()) {
    CompletionQueue* cq = *ch->pending_.begin();
    ch->pending_.erase(ch->pending_.begin());
    if (!cq->closed()) cq->DrainFromEvent(env);
  }
  ch->Unref();
}

void CompletionQueue::NoteEvent() {
  events_++;
  if (++unacked_ >= kAckEvery) {
    ibv_ack_cq_events(cq_, unacked_);
    unacked_ = 0;
  }
  channel_->pending_.insert(this);
}

void CompletionQueue::DrainFromEvent(Napi::Env env) { Drain(env, true); }

// poll(): fills `batch` with up to 64 completions and returns the count,
// without calling onBatch (for CQs without a channel, and at close).
Napi::Value CompletionQueue::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CompletionQueue");
  if (delivering_) ThrowCode(env, "ERR_REENTRANT", "poll() called from inside the onBatch handler of the same CQ");
  int n = PollBatch();
  if (n < 0) ThrowErrno(env, -n, "ibv_poll_cq");
  return Napi::Number::New(env, n);
}

Napi::Value CompletionQueue::Batch(const Napi::CallbackInfo& info) {
  if (batch_.IsEmpty()) ThrowCode(info.Env(), "ERR_CLOSED", "CompletionQueue is closed");
  return batch_.Value();
}

Napi::Value CompletionQueue::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("events", static_cast<double>(events_));
  o.Set("polls", static_cast<double>(polls_));
  o.Set("completions", static_cast<double>(completions_));
  o.Set("batches", static_cast<double>(batches_));
  o.Set("compVector", compVector_);
  return o;
}

Napi::Value CompletionQueue::Cqe(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cq_ ? cq_->cqe : 0); }
Napi::Value CompletionQueue::CompVector(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), compVector_); }

Napi::Function CompletionQueue::Define(Napi::Env env) {
  return DefineClass(env, "CompletionQueue", Common({
      InstanceAccessor<&CompletionQueue::Batch>("batch"),
      InstanceAccessor<&CompletionQueue::Cqe>("cqe"),
      InstanceAccessor<&CompletionQueue::CompVector>("compVector"),
      InstanceMethod<&CompletionQueue::Poll>("poll"),
      InstanceMethod<&CompletionQueue::Stats>("stats"),
  }));
}

void InitCq(Napi::Env env, Napi::Object exports, InstanceData* data) {
  Napi::Function cq = CompletionQueue::Define(env);
  data->cq = Napi::Persistent(cq);
  exports.Set("CompletionQueue", cq);
  exports.Set("CQ_BATCH", CompletionQueue::kBatch);
}

}  // namespace smbdirect
