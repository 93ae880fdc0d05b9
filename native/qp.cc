// RC queue pairs: posting receives, sends (with invalidate / immediate), RDMA
// write (with immediate) and read, memory-window bind and local invalidate.
// Every argument is checked before it reaches the provider: a bad range or a
// closed object throws, it never becomes a wild DMA.
#include <algorithm>

#include "objects.h"

namespace smbdirect {

static constexpr uint32_t kMaxSge = 32;
// Staged posts: JS writes up to kStageRows rows of kStageCols numbers (wrId, mrHandle, offset,
// length, send flags) into a Float64Array shared with us, then posts them with one call.
static constexpr uint32_t kStageRows = 64, kStageCols = 5;

struct QpInit {
  ibv_qp* qp;
  rdma_cm_id* cmId;
  ProtectionDomain* pd;
  uint32_t maxSendSge, maxRecvSge, maxSgeRd;
};

// new QueuePair(External<QpInit>, pd, sendCq, recvCq, cmId)
QueuePair::QueuePair(const Napi::CallbackInfo& info) : Wrapped(info) {
  QpInit* init = CtorArg<QpInit>(info, "QueuePair");
  qp_ = init->qp;
  cmId_ = init->cmId;
  pd_ = init->pd;
  maxSendSge_ = init->maxSendSge;
  maxRecvSge_ = init->maxRecvSge;
  maxSgeRd_ = init->maxSgeRd;
  Adopt(pd_, info[1].As<Napi::Object>());
  Adopt(Napi::ObjectWrap<CompletionQueue>::Unwrap(info[2].As<Napi::Object>()), info[2].As<Napi::Object>());
  if (info[3] != info[2])
    Adopt(Napi::ObjectWrap<CompletionQueue>::Unwrap(info[3].As<Napi::Object>()), info[3].As<Napi::Object>());
  Adopt(Napi::ObjectWrap<CmId>::Unwrap(info[4].As<Napi::Object>()), info[4].As<Napi::Object>());
  Napi::Env env = info.Env();
  Napi::Float64Array send = Napi::Float64Array::New(env, kStageRows * kStageCols);
  Napi::Float64Array recv = Napi::Float64Array::New(env, kStageRows * kStageCols);
  sendRows_ = send.Data();
  recvRows_ = recv.Data();
  sendStage_ = Napi::Persistent(send);
  recvStage_ = Napi::Persistent(recv);
}

void QueuePair::Release() {
  if (qp_) {
    if (cmId_) rdma_destroy_qp(cmId_);  // also clears cm_id->qp
    else ibv_destroy_qp(qp_);
  }
  qp_ = nullptr;
  cmId_ = nullptr;
  sendStage_.Reset();
  recvStage_.Reset();
  sendRows_ = recvRows_ = nullptr;
}

static const char* QpState(ibv_qp_state s) {
  switch (s) {
    case IBV_QPS_RESET: return "RESET";
    case IBV_QPS_INIT: return "INIT";
    case IBV_QPS_RTR: return "RTR";
    case IBV_QPS_RTS: return "RTS";
    case IBV_QPS_SQD: return "SQD";
    case IBV_QPS_SQE: return "SQE";
    case IBV_QPS_ERR: return "ERR";
    default: return "UNKNOWN";
  }
}

Napi::Value QueuePair::QpNum(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), qp_ ? qp_->qp_num : 0);
}

Napi::Value QueuePair::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  ibv_qp_attr a{};
  ibv_qp_init_attr init{};
  int rc = ibv_query_qp(qp_, &a, IBV_QP_STATE | IBV_QP_CAP | IBV_QP_PATH_MTU | IBV_QP_MAX_QP_RD_ATOMIC | IBV_QP_MAX_DEST_RD_ATOMIC, &init);
  if (rc) ThrowErrno(env, rc, "ibv_query_qp");
  Napi::Object o = Napi::Object::New(env);
  o.Set("qpNum", qp_->qp_num);
  o.Set("state", QpState(a.qp_state));
  o.Set("pathMtu", 128 << a.path_mtu);
  o.Set("maxSendWr", a.cap.max_send_wr);
  o.Set("maxRecvWr", a.cap.max_recv_wr);
  o.Set("maxSendSge", a.cap.max_send_sge);
  o.Set("maxRecvSge", a.cap.max_recv_sge);
  o.Set("maxInlineData", a.cap.max_inline_data);
  o.Set("maxRdAtomic", a.max_rd_atomic);
  o.Set("maxDestRdAtomic", a.max_dest_rd_atomic);
  return o;
}

// toError(): moves the QP to ERR so every outstanding WR completes as flushed.
Napi::Value QueuePair::ToError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  int rc = ibv_modify_qp(qp_, &a, IBV_QP_STATE);
  if (rc) ThrowErrno(env, rc, "ibv_modify_qp");
  return env.Undefined();
}

// setMinRnrTimer(code): the RNR NAK delay this QP asks a sender to wait when
// no receive is posted (IB encoding 0-31; 0 = 655 ms, 12 = 0.64 ms, 1 = 0.01 ms).
// rdma_cm leaves it at the CM's value; it may change in RTS (RTS->RTS).
Napi::Value QueuePair::SetMinRnrTimer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  uint32_t code = ArgU32(info, 0, "minRnrTimer");
  if (code > 31) ThrowRange(env, "minRnrTimer must be in [0, 31]");
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_RTS;
  a.cur_qp_state = IBV_QPS_RTS;
  a.min_rnr_timer = static_cast<uint8_t>(code);
  int rc = ibv_modify_qp(qp_, &a, IBV_QP_STATE | IBV_QP_CUR_STATE | IBV_QP_MIN_RNR_TIMER);
  if (rc) ThrowErrno(env, rc, "ibv_modify_qp");
  return env.Undefined();
}

static uint64_t WrId(Napi::Env env, Napi::Value v) {
  uint64_t id = ValueU64(env, v, "wrId");  // a number: the CQ batch reports it as a float64
  return id;
}

// sges: undefined/null (no data), one {mr, offset, length} or an array of them.
int QueuePair::Sgl(Napi::Env env, Napi::Value v, ibv_sge* out, uint32_t max) {
  if (v.IsUndefined() || v.IsNull()) return 0;
  InstanceData* d = Instance(env);
  auto one = [&](Napi::Value e, ibv_sge* sge) {
    if (!e.IsObject()) ThrowType(env, "an SGE must be { mr, offset, length }");
    Napi::Object o = e.As<Napi::Object>();
    MemoryRegion* mr = UnwrapArg<MemoryRegion>(env, o.Get("mr"), d->mr, "MemoryRegion (sge.mr)");
    if (mr->pd() != pd_) ThrowCode(env, "ERR_WRONG_PD", "sge.mr is registered on another protection domain");
    uint64_t off = ValueU64(env, o.Get("offset"), "sge.offset");
    uint64_t len = ValueU64(env, o.Get("length"), "sge.length");
    if (off > mr->length() || len > mr->length() - off)
      ThrowRange(env, "sge [" + std::to_string(off) + ", +" + std::to_string(len) + ") is outside the memory region (" +
                          std::to_string(mr->length()) + " bytes)");
    if (len > 0xffffffffu) ThrowRange(env, "sge.length must be < 4 GiB");
    sge->addr = reinterpret_cast<uintptr_t>(mr->base()) + off;
    sge->length = static_cast<uint32_t>(len);
    sge->lkey = mr->mr()->lkey;
  };
  if (v.IsArray()) {
    Napi::Array a = v.As<Napi::Array>();
    uint32_t n = a.Length();
    if (n > max) ThrowRange(env, std::to_string(n) + " SGEs exceed the QP's limit of " + std::to_string(max));
    for (uint32_t i = 0; i < n; i++) one(a.Get(i), &out[i]);
    return static_cast<int>(n);
  }
  if (max < 1) ThrowRange(env, "the QP allows no SGEs here");
  one(v, &out[0]);
  return 1;
}

// A staged row's SGE: (mrHandle, offset, length); handle 0 = no data. The same checks as Sgl
// (open, same PD, in bounds) without reading properties of JS objects.
int QueuePair::StagedSge(Napi::Env env, const double* row, ibv_sge* sge) {
  double h = row[1], off = row[2], len = row[3];
  if (h == 0) return 0;
  InstanceData* d = Instance(env);
  auto it = h > 0 && h <= 4294967295.0 ? d->mrs.find(static_cast<uint32_t>(h)) : d->mrs.end();
  if (it == d->mrs.end()) ThrowCode(env, "ERR_CLOSED", "memory region " + std::to_string(h) + " is closed or unknown");
  MemoryRegion* mr = it->second;
  if (mr->pd() != pd_) ThrowCode(env, "ERR_WRONG_PD", "the memory region is registered on another protection domain");
  if (!(off >= 0 && len >= 0 && len <= 4294967295.0 && off + len <= static_cast<double>(mr->length())) ||
      off != static_cast<double>(static_cast<uint64_t>(off)) || len != static_cast<double>(static_cast<uint32_t>(len)))
    ThrowRange(env, "sge [" + std::to_string(off) + ", +" + std::to_string(len) + ") is outside the memory region (" +
                        std::to_string(mr->length()) + " bytes)");
  sge->addr = reinterpret_cast<uintptr_t>(mr->base()) + static_cast<uint64_t>(off);
  sge->length = static_cast<uint32_t>(len);
  sge->lkey = mr->mr()->lkey;
  return 1;
}

static uint64_t RowWrId(Napi::Env env, double w) {
  if (!(w >= 0 && w <= 9007199254740991.0) || w != static_cast<double>(static_cast<uint64_t>(w)))
    ThrowRange(env, "wrId must be a safe non-negative integer");
  return static_cast<uint64_t>(w);
}

static uint32_t Flags(const Napi::CallbackInfo& info, size_t i) {
  uint32_t f = OptU32(info, i, "flags", IBV_SEND_SIGNALED);
  const uint32_t known = IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED | IBV_SEND_INLINE;
  if (f & ~known) ThrowRange(info.Env(), "flags has unknown bits");
  return f;
}

// The part every data-carrying send-queue post shares: wrId and SGL (args 0, 1).
void QueuePair::DataWr(const Napi::CallbackInfo& info, ibv_send_wr* wr, ibv_sge* sge) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  wr->wr_id = WrId(env, info[0]);
  wr->sg_list = sge;
  wr->num_sge = Sgl(env, info[1], sge, maxSendSge_);
}

void QueuePair::Post(Napi::Env env, ibv_send_wr* wr) {
  ibv_send_wr* bad = nullptr;
  int rc = ibv_post_send(qp_, wr, &bad);
  if (rc) ThrowErrno(env, rc, "ibv_post_send");
}

// postRecv(wrId, sges)
Napi::Value QueuePair::PostRecv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  ibv_sge sge[kMaxSge];
  ibv_recv_wr wr{};
  wr.wr_id = WrId(env, info[0]);
  wr.sg_list = sge;
  wr.num_sge = Sgl(env, info[1], sge, maxRecvSge_);
  ibv_recv_wr* bad = nullptr;
  int rc = ibv_post_recv(qp_, &wr, &bad);
  if (rc) ThrowErrno(env, rc, "ibv_post_recv");
  return env.Undefined();
}

// postStaged(kind, n): posts rows 0..n-1 of sendStage (kind 0: plain sends) or recvStage
// (kind 1: receives) as one chained list. Every row is checked before anything is posted; if the
// provider refuses the list part way, the error says how many went (err.posted).
Napi::Value QueuePair::PostStaged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  uint32_t kind = ArgU32(info, 0, "kind");
  uint32_t n = ArgU32(info, 1, "n");
  if (kind > 1) ThrowRange(env, "kind must be 0 (sends) or 1 (receives)");
  if (n > kStageRows) ThrowRange(env, "n must be at most " + std::to_string(kStageRows));
  if (n == 0) return env.Undefined();
  ibv_sge sges[kStageRows];
  int rc;
  uint32_t posted = n;
  if (kind == 0) {
    ibv_send_wr wrs[kStageRows];
    const uint32_t known = IBV_SEND_FENCE | IBV_SEND_SIGNALED | IBV_SEND_SOLICITED;
    for (uint32_t i = 0; i < n; i++) {
      const double* row = sendRows_ + i * kStageCols;
      ibv_send_wr& wr = wrs[i];
      wr = ibv_send_wr{};
      wr.wr_id = RowWrId(env, row[0]);
      wr.sg_list = &sges[i];
      wr.num_sge = StagedSge(env, row, &sges[i]);
      if (static_cast<uint32_t>(wr.num_sge) > maxSendSge_) ThrowRange(env, "the QP allows no SGEs here");
      uint32_t flags = static_cast<uint32_t>(row[4]);
      if (row[4] != static_cast<double>(flags) || (flags & ~known)) ThrowRange(env, "flags has unknown bits");
      wr.send_flags = flags;
      wr.opcode = IBV_WR_SEND;
      wr.next = i + 1 < n ? &wrs[i + 1] : nullptr;
    }
    ibv_send_wr* bad = nullptr;
    rc = ibv_post_send(qp_, wrs, &bad);
    if (rc && bad) posted = static_cast<uint32_t>(bad - wrs);
  } else {
    ibv_recv_wr wrs[kStageRows];
    for (uint32_t i = 0; i < n; i++) {
      const double* row = recvRows_ + i * kStageCols;
      ibv_recv_wr& wr = wrs[i];
      wr = ibv_recv_wr{};
      wr.wr_id = RowWrId(env, row[0]);
      wr.sg_list = &sges[i];
      wr.num_sge = StagedSge(env, row, &sges[i]);
      if (static_cast<uint32_t>(wr.num_sge) > maxRecvSge_) ThrowRange(env, "the QP allows no SGEs here");
      wr.next = i + 1 < n ? &wrs[i + 1] : nullptr;
    }
    ibv_recv_wr* bad = nullptr;
    rc = ibv_post_recv(qp_, wrs, &bad);
    if (rc && bad) posted = static_cast<uint32_t>(bad - wrs);
  }
  if (rc) {
    Napi::Error e = ErrnoError(env, rc, kind == 0 ? "ibv_post_send" : "ibv_post_recv");
    e.Set("posted", Napi::Number::New(env, posted));
    throw e;
  }
  return env.Undefined();
}

Napi::Value QueuePair::SendStage(const Napi::CallbackInfo& info) {
  if (sendStage_.IsEmpty()) ThrowCode(info.Env(), "ERR_CLOSED", "QueuePair is closed");
  return sendStage_.Value();
}
Napi::Value QueuePair::RecvStage(const Napi::CallbackInfo& info) {
  if (recvStage_.IsEmpty()) ThrowCode(info.Env(), "ERR_CLOSED", "QueuePair is closed");
  return recvStage_.Value();
}

// postSend(wrId, sges, flags = SIGNALED, invalidateRkey?, imm?)
Napi::Value QueuePair::PostSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ibv_sge sge[kMaxSge];
  ibv_send_wr wr{};
  DataWr(info, &wr, sge);
  wr.send_flags = Flags(info, 2);
  wr.opcode = IBV_WR_SEND;
  bool inv = info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull();
  bool imm = info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull();
  if (inv && imm) ThrowType(env, "a send carries either an invalidate rkey or immediate data, not both");
  if (inv) {
    wr.opcode = IBV_WR_SEND_WITH_INV;
    wr.invalidate_rkey = ArgU32(info, 3, "invalidateRkey");
    // libsiw takes the STag to invalidate from wr.rdma.rkey (push_send_wqe),
    // not from invalidate_rkey; other providers ignore wr.rdma on a send.
    wr.wr.rdma.rkey = wr.invalidate_rkey;
  } else if (imm) {
    wr.opcode = IBV_WR_SEND_WITH_IMM;
    wr.imm_data = htobe32(ArgU32(info, 4, "imm"));
  }
  Post(env, &wr);
  return env.Undefined();
}

// postWrite(wrId, sges, remoteAddr, rkey, flags = SIGNALED, imm?)
Napi::Value QueuePair::PostWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ibv_sge sge[kMaxSge];
  ibv_send_wr wr{};
  DataWr(info, &wr, sge);
  wr.wr.rdma.remote_addr = ArgU64(info, 2, "remoteAddr");
  wr.wr.rdma.rkey = ArgU32(info, 3, "rkey");
  wr.send_flags = Flags(info, 4);
  wr.opcode = IBV_WR_RDMA_WRITE;
  if (info.Length() > 5 && !info[5].IsUndefined() && !info[5].IsNull()) {
    wr.opcode = IBV_WR_RDMA_WRITE_WITH_IMM;
    wr.imm_data = htobe32(ArgU32(info, 5, "imm"));
  }
  Post(env, &wr);
  return env.Undefined();
}

// postRead(wrId, sges, remoteAddr, rkey, flags = SIGNALED)
Napi::Value QueuePair::PostRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ibv_sge sge[kMaxSge];
  ibv_send_wr wr{};
  DataWr(info, &wr, sge);
  // iWARP allows one sink SGE per read (siw's user provider would silently
  // place only the first): refuse what the device says it cannot do.
  if (static_cast<uint32_t>(wr.num_sge) > maxSgeRd_)
    ThrowCode(env, "ERR_DEVICE_LIMIT", std::to_string(wr.num_sge) + " SGEs exceed the device's max_sge_rd (" +
                                           std::to_string(maxSgeRd_) + ") for an RDMA read");
  wr.wr.rdma.remote_addr = ArgU64(info, 2, "remoteAddr");
  wr.wr.rdma.rkey = ArgU32(info, 3, "rkey");
  wr.send_flags = Flags(info, 4);
  if (wr.send_flags & IBV_SEND_INLINE) ThrowRange(env, "an RDMA read cannot be inline");
  wr.opcode = IBV_WR_RDMA_READ;
  Post(env, &wr);
  return env.Undefined();
}

// postBindMw(wrId, mw, mr, offset, length, access, flags = SIGNALED) -> new rkey
Napi::Value QueuePair::PostBindMw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  InstanceData* d = Instance(env);
  uint64_t wrId = WrId(env, info[0]);
  MemoryWindow* mw = UnwrapArg<MemoryWindow>(env, info[1], d->mw, "MemoryWindow");
  MemoryRegion* mr = UnwrapArg<MemoryRegion>(env, info[2], d->mr, "MemoryRegion");
  if (mw->pd() != pd_ || mr->pd() != pd_) ThrowCode(env, "ERR_WRONG_PD", "the window and region must be on the QP's protection domain");
  uint64_t off = ArgU64(info, 3, "offset");
  uint64_t len = ArgU64(info, 4, "length");
  if (off > mr->length() || len > mr->length() - off) ThrowRange(env, "the window is outside the memory region");
  uint32_t access = ArgU32(info, 5, "access");
  if (access & ~static_cast<uint32_t>(IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC | IBV_ACCESS_ZERO_BASED))
    ThrowRange(env, "a window's access may only hold remote read/write/atomic and zero-based");
  ibv_send_wr wr{};
  wr.wr_id = wrId;
  wr.opcode = IBV_WR_BIND_MW;
  wr.send_flags = Flags(info, 6);
  uint32_t rkey = ibv_inc_rkey(mw->mw()->rkey);
  wr.bind_mw.mw = mw->mw();
  wr.bind_mw.rkey = rkey;
  wr.bind_mw.bind_info.mr = mr->mr();
  wr.bind_mw.bind_info.addr = reinterpret_cast<uintptr_t>(mr->base()) + off;
  wr.bind_mw.bind_info.length = len;
  wr.bind_mw.bind_info.mw_access_flags = access;
  Post(env, &wr);
  mw->mw()->rkey = rkey;  // type 2: the consumer owns the key's variant byte
  // A bound type-2 window holds its QP (rxe keeps a QP reference until the
  // window is invalidated or freed, and destroying the QP first stalls for
  // tens of seconds): the QP closes its windows first.
  mw->AdoptOnce(this, Value());
  return Napi::Number::New(env, rkey);
}

// postLocalInvalidate(wrId, rkey, flags = SIGNALED)
Napi::Value QueuePair::PostLocalInvalidate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "QueuePair");
  ibv_send_wr wr{};
  wr.wr_id = WrId(env, info[0]);
  wr.opcode = IBV_WR_LOCAL_INV;
  wr.invalidate_rkey = ArgU32(info, 1, "rkey");
  wr.send_flags = Flags(info, 2);
  Post(env, &wr);
  return env.Undefined();
}

Napi::Function QueuePair::Define(Napi::Env env) {
  return DefineClass(env, "QueuePair", Common({
      InstanceAccessor<&QueuePair::QpNum>("qpNum"),
      InstanceMethod<&QueuePair::Query>("query"),
      InstanceMethod<&QueuePair::ToError>("toError"),
      InstanceMethod<&QueuePair::SetMinRnrTimer>("setMinRnrTimer"),
      InstanceMethod<&QueuePair::PostRecv>("postRecv"),
      InstanceMethod<&QueuePair::PostSend>("postSend"),
      InstanceMethod<&QueuePair::PostStaged>("postStaged"),
      InstanceAccessor<&QueuePair::SendStage>("sendStage"),
      InstanceAccessor<&QueuePair::RecvStage>("recvStage"),
      InstanceMethod<&QueuePair::PostWrite>("postWrite"),
      InstanceMethod<&QueuePair::PostRead>("postRead"),
      InstanceMethod<&QueuePair::PostBindMw>("postBindMw"),
      InstanceMethod<&QueuePair::PostLocalInvalidate>("postLocalInvalidate"),
  }));
}

// Used by CmId::CreateQp (cm.cc).
Napi::Object NewQueuePair(Napi::Env env, ibv_qp* qp, rdma_cm_id* id, ProtectionDomain* pd, uint32_t maxSendSge,
                          uint32_t maxRecvSge, uint32_t maxSgeRd, Napi::Object pdObj, Napi::Object sendCq,
                          Napi::Object recvCq, Napi::Object cmId) {
  QpInit init{qp, id, pd, std::min(maxSendSge, kMaxSge), std::min(maxRecvSge, kMaxSge),
              std::min({maxSgeRd, maxSendSge, kMaxSge})};
  return Instance(env)->qp.New({Napi::External<QpInit>::New(env, &init), pdObj, sendCq, recvCq, cmId});
}

void InitQp(Napi::Env env, Napi::Object exports, InstanceData* data) {
  Napi::Function qp = QueuePair::Define(env);
  data->qp = Napi::Persistent(qp);
  exports.Set("QueuePair", qp);
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("FENCE", static_cast<int>(IBV_SEND_FENCE));
  flags.Set("SIGNALED", static_cast<int>(IBV_SEND_SIGNALED));
  flags.Set("SOLICITED", static_cast<int>(IBV_SEND_SOLICITED));
  flags.Set("INLINE", static_cast<int>(IBV_SEND_INLINE));
  exports.Set("SEND_FLAGS", flags);
  exports.Set("STAGE_ROWS", kStageRows);
}

}  // namespace smbdirect
