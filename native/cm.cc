// rdma_cm: an event channel on uv_poll and the cm_ids on it. Events are
// copied out (private data included) and acked before JS sees them, so
// rdma_destroy_id never waits on an unacked event.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <mutex>
#include <set>

#include "objects.h"

namespace smbdirect {

Napi::Object NewQueuePair(Napi::Env env, ibv_qp* qp, rdma_cm_id* id, ProtectionDomain* pd, uint32_t maxSendSge,
                          uint32_t maxRecvSge, uint32_t maxSgeRd, Napi::Object pdObj, Napi::Object sendCq,
                          Napi::Object recvCq, Napi::Object cmId);

// ---- EventChannel -----------------------------------------------------------

static Napi::Value CreateEventChannel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) ThrowType(env, "onEvents must be a function");
  rdma_event_channel* ch = rdma_create_event_channel();
  if (!ch) ThrowErrno(env, errno ? errno : ENODEV, "rdma_create_event_channel");
  int rc = SetNonBlocking(ch->fd);
  if (rc) {
    rdma_destroy_event_channel(ch);
    ThrowErrno(env, rc, "fcntl");
  }
  return Instance(env)->eventChannel.New({Napi::External<rdma_event_channel>::New(env, ch), info[0]});
}

EventChannel::EventChannel(const Napi::CallbackInfo& info) : Wrapped(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  rdma_event_channel* ch = CtorArg<rdma_event_channel>(info, "EventChannel");
  int rc = poll_.Start(env, ch->fd, [this]() { Drain(); });
  if (rc) {
    rdma_destroy_event_channel(ch);
    ThrowErrno(env, -rc, "uv_poll_start");
  }
  ch_ = ch;
  onEvents_ = Napi::Persistent(info[1].As<Napi::Function>());
  Ref();  // events keep coming while it is open
}

void EventChannel::Release() {
  poll_.Stop();
  onEvents_.Reset();
  if (ch_) rdma_destroy_event_channel(ch_);  // its cm_ids were destroyed first (children)
  ch_ = nullptr;
  if (!in_finalizer) Unref();
}

Napi::Value EventChannel::Fd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), ch_ ? ch_->fd : -1); }

static const char* EventName(rdma_cm_event_type t) {
  const char* s = rdma_event_str(t);  // "RDMA_CM_EVENT_ESTABLISHED"
  return strncmp(s, "RDMA_CM_EVENT_", 14) == 0 ? s + 14 : s;
}

void EventChannel::Drain() {
  Napi::Env env = env_;
  Napi::HandleScope scope(env);
  if (!CanCallJs(env)) return;
  Napi::Array events = Napi::Array::New(env);
  uint32_t n = 0;
  std::vector<ibv_context*> removed;  // devices with a DEVICE_REMOVAL in this batch
  rdma_cm_event* ev;
  while (!closed() && rdma_get_cm_event(ch_, &ev) == 0) {
    if (!CanCallJs(env)) {  // a terminating worker: nobody will see it
      rdma_ack_cm_event(ev);
      continue;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", EventName(ev->event));
    o.Set("status", ev->status);
    if (ev->status < 0) o.Set("code", ErrnoName(-ev->status));
    if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
      o.Set("id", CmId::Wrap(env, ev->id, this));
      if (ev->listen_id && ev->listen_id->context)
        o.Set("listenId", static_cast<CmId*>(ev->listen_id->context)->Value());
    } else if (ev->id && ev->id->context) {
      o.Set("id", static_cast<CmId*>(ev->id->context)->Value());
    }
    switch (ev->event) {
      case RDMA_CM_EVENT_CONNECT_REQUEST:
      case RDMA_CM_EVENT_CONNECT_RESPONSE:
      case RDMA_CM_EVENT_ESTABLISHED:
      case RDMA_CM_EVENT_REJECTED: {
        const rdma_conn_param& p = ev->param.conn;
        o.Set("privateData", CopyBytes(env, p.private_data, p.private_data ? p.private_data_len : 0));
        o.Set("initiatorDepth", p.initiator_depth);
        o.Set("responderResources", p.responder_resources);
        break;
      }
      default:
        break;
    }
    if (ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL && ev->id && ev->id->verbs) removed.push_back(ev->id->verbs);
    rdma_ack_cm_event(ev);
    events.Set(n++, o);
  }
  // before JS sees the events: a Device closes once the JS handling them has closed its children
  for (ibv_context* ctx : removed) Device::NoteRemoved(env, ctx);
  if (n > 0) CallJs(env, onEvents_, {events});
}

// createId(): a TCP-port-space cm_id on this channel
Napi::Value EventChannel::CreateId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "EventChannel");
  rdma_cm_id* id = nullptr;
  if (rdma_create_id(ch_, &id, nullptr, RDMA_PS_TCP)) ThrowErrno(env, errno, "rdma_create_id");
  return CmId::Wrap(env, id, this);
}

// ---- handing a cm_id to another thread ----------------------------------------
// A listener on one thread (env) detaches a connect request's id; a worker
// thread adopts it onto its own event channel with rdma_migrate_id. The token
// is the id's address, honoured only while it is in this process-wide set, so
// a stale or forged token is refused and an id is adopted at most once.

static std::mutex g_handoffMutex;
static std::set<rdma_cm_id*> g_handoff;

static bool TakeHandoff(rdma_cm_id* id) {
  std::lock_guard<std::mutex> lock(g_handoffMutex);
  return g_handoff.erase(id) == 1;
}

static rdma_cm_id* HandoffArg(Napi::Env env, Napi::Value v) {
  if (!v.IsBigInt()) ThrowType(env, "the handle must be a bigint from CmId.detach()");
  bool lossless = false;
  uint64_t raw = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowRange(env, "not a cm_id handle");
  return reinterpret_cast<rdma_cm_id*>(static_cast<uintptr_t>(raw));
}

// adoptId(handle): rdma_migrate_id of a detached id onto this channel -> CmId
Napi::Value EventChannel::AdoptId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "EventChannel");
  rdma_cm_id* id = HandoffArg(env, info[0]);
  if (!TakeHandoff(id)) ThrowCode(env, "ERR_INVALID_HANDLE", "not a detached cm_id (already adopted, destroyed, or never detached)");
  if (rdma_migrate_id(id, ch_)) {
    int err = errno;
    rdma_destroy_id(id);
    ThrowErrno(env, err, "rdma_migrate_id");
  }
  return CmId::Wrap(env, id, this);
}

// destroyDetachedId(handle): frees a detached id nobody adopted; false if it was adopted
static Napi::Value DestroyDetachedId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rdma_cm_id* id = HandoffArg(env, info[0]);
  if (!TakeHandoff(id)) return Napi::Boolean::New(env, false);
  rdma_destroy_id(id);
  return Napi::Boolean::New(env, true);
}

Napi::Function EventChannel::Define(Napi::Env env) {
  return DefineClass(env, "EventChannel", Common({
      InstanceAccessor<&EventChannel::Fd>("fd"),
      InstanceMethod<&EventChannel::CreateId>("createId"),
      InstanceMethod<&EventChannel::AdoptId>("adoptId"),
  }));
}

// ---- CmId -------------------------------------------------------------------

struct CmIdInit {
  rdma_cm_id* id;
  EventChannel* channel;
};

Napi::Object CmId::Wrap(Napi::Env env, rdma_cm_id* id, EventChannel* ch) {
  CmIdInit init{id, ch};
  return Instance(env)->cmId.New({Napi::External<CmIdInit>::New(env, &init), ch->Value()});
}

CmId::CmId(const Napi::CallbackInfo& info) : Wrapped(info) {
  CmIdInit* init = CtorArg<CmIdInit>(info, "CmId");
  id_ = init->id;
  channel_ = init->channel;
  id_->context = this;
  Adopt(channel_, info[1].As<Napi::Object>());
  Ref();  // a connection lives until close(), like a socket
}

void CmId::Release() {
  qpObject_.Reset();
  qp_ = nullptr;
  if (id_) {
    id_->context = nullptr;
    rdma_destroy_id(id_);  // its QP was destroyed first (child)
  }
  id_ = nullptr;
  if (!in_finalizer) Unref();
}

// "10.0.0.1" or "fe80::1" (literal addresses: names are resolved in JS)
static void ParseAddr(Napi::Env env, Napi::Value host, Napi::Value port, sockaddr_storage* ss) {
  memset(ss, 0, sizeof *ss);
  if (!host.IsString()) ThrowType(env, "host must be an IP address string");
  std::string h = host.As<Napi::String>();
  uint32_t p = port.IsUndefined() ? 0 : ValueU32(env, port, "port");
  if (p > 65535) ThrowRange(env, "port must be in [0, 65535]");
  auto* s4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET, h.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(p));
  } else if (inet_pton(AF_INET6, h.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(p));
  } else {
    ThrowCode(env, "ERR_INVALID_IP_ADDRESS", "not an IP address: " + h);
  }
}

static Napi::Value AddrObject(Napi::Env env, const sockaddr* sa) {
  if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) return env.Undefined();
  char text[INET6_ADDRSTRLEN];
  Napi::Object o = Napi::Object::New(env);
  if (sa->sa_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &s->sin_addr, text, sizeof text);
    o.Set("family", "IPv4");
    o.Set("port", ntohs(s->sin_port));
  } else {
    auto* s = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &s->sin6_addr, text, sizeof text);
    o.Set("family", "IPv6");
    o.Set("port", ntohs(s->sin6_port));
  }
  o.Set("address", text);
  return o;
}

// resolveAddr(host, port, timeoutMs = 2000, srcHost?)
Napi::Value CmId::ResolveAddr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  sockaddr_storage dst, src;
  ParseAddr(env, info[0], info[1], &dst);
  uint32_t timeout = OptU32(info, 2, "timeoutMs", 2000);
  sockaddr* srcp = nullptr;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    ParseAddr(env, info[3], env.Undefined(), &src);
    srcp = reinterpret_cast<sockaddr*>(&src);
  }
  if (rdma_resolve_addr(id_, srcp, reinterpret_cast<sockaddr*>(&dst), static_cast<int>(timeout)))
    ThrowErrno(env, errno, "rdma_resolve_addr");
  return env.Undefined();
}

Napi::Value CmId::ResolveRoute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  uint32_t timeout = OptU32(info, 0, "timeoutMs", 2000);
  if (rdma_resolve_route(id_, static_cast<int>(timeout))) ThrowErrno(env, errno, "rdma_resolve_route");
  return env.Undefined();
}

// bind(host, port)
Napi::Value CmId::Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  sockaddr_storage ss;
  ParseAddr(env, info[0], info[1], &ss);
  if (rdma_bind_addr(id_, reinterpret_cast<sockaddr*>(&ss))) ThrowErrno(env, errno, "rdma_bind_addr");
  return env.Undefined();
}

Napi::Value CmId::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  uint32_t backlog = OptU32(info, 0, "backlog", 128);
  if (rdma_listen(id_, static_cast<int>(backlog))) ThrowErrno(env, errno, "rdma_listen");
  return env.Undefined();
}

// {privateData?, initiatorDepth?, responderResources?, retryCount?, rnrRetryCount?}
static rdma_conn_param ConnParam(Napi::Env env, Napi::Value v, std::vector<uint8_t>* pdata) {
  rdma_conn_param p{};
  p.initiator_depth = 1;
  p.responder_resources = 1;
  p.retry_count = 7;
  p.rnr_retry_count = 7;
  if (v.IsUndefined() || v.IsNull()) return p;
  if (!v.IsObject()) ThrowType(env, "connection parameters must be an object");
  Napi::Object o = v.As<Napi::Object>();
  *pdata = OptBytes(env, o.Get("privateData"), "privateData", 196);  // IB CM REQ limit; iWARP allows 512
  p.private_data = pdata->empty() ? nullptr : pdata->data();
  p.private_data_len = static_cast<uint8_t>(pdata->size());
  auto u8 = [&](const char* name, uint8_t* out, uint32_t max) {
    Napi::Value x = o.Get(name);
    if (x.IsUndefined()) return;
    uint32_t n = ValueU32(env, x, name);
    if (n > max) ThrowRange(env, std::string(name) + " must be <= " + std::to_string(max));
    *out = static_cast<uint8_t>(n);
  };
  u8("initiatorDepth", &p.initiator_depth, 255);
  u8("responderResources", &p.responder_resources, 255);
  u8("retryCount", &p.retry_count, 7);
  u8("rnrRetryCount", &p.rnr_retry_count, 7);
  return p;
}

Napi::Value CmId::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  std::vector<uint8_t> pdata;
  rdma_conn_param p = ConnParam(env, info[0], &pdata);
  if (rdma_connect(id_, &p)) ThrowErrno(env, errno, "rdma_connect");
  return env.Undefined();
}

Napi::Value CmId::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  std::vector<uint8_t> pdata;
  rdma_conn_param p = ConnParam(env, info[0], &pdata);
  if (rdma_accept(id_, &p)) ThrowErrno(env, errno, "rdma_accept");
  return env.Undefined();
}

Napi::Value CmId::Reject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  std::vector<uint8_t> pdata = OptBytes(env, info[0], "privateData", 148);
  if (rdma_reject(id_, pdata.empty() ? nullptr : pdata.data(), static_cast<uint8_t>(pdata.size())))
    ThrowErrno(env, errno, "rdma_reject");
  return env.Undefined();
}

Napi::Value CmId::Disconnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  if (rdma_disconnect(id_)) ThrowErrno(env, errno, "rdma_disconnect");
  return env.Undefined();
}

// createQp(pd, sendCq, recvCq, {maxSendWr, maxRecvWr, maxSendSge, maxRecvSge, maxInlineData})
Napi::Value CmId::CreateQp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  InstanceData* d = Instance(env);
  if (qp_ && !qp_->closed()) ThrowCode(env, "ERR_QP_EXISTS", "this cm_id already has a queue pair");
  if (!id_->verbs) ThrowCode(env, "ERR_NO_DEVICE", "the cm_id is not bound to a device yet (resolve the address first)");
  ProtectionDomain* pd = UnwrapArg<ProtectionDomain>(env, info[0], d->pd, "ProtectionDomain");
  CompletionQueue* scq = UnwrapArg<CompletionQueue>(env, info[1], d->cq, "CompletionQueue (send)");
  CompletionQueue* rcq = UnwrapArg<CompletionQueue>(env, info[2], d->cq, "CompletionQueue (recv)");
  if (pd->device()->ctx() != id_->verbs || scq->device() != pd->device() || rcq->device() != pd->device())
    ThrowCode(env, "ERR_WRONG_DEVICE", std::string("the PD and CQs must be on the cm_id's device ") + ibv_get_device_name(id_->verbs->device));
  if (!info[3].IsObject()) ThrowType(env, "caps must be an object");
  Napi::Object caps = info[3].As<Napi::Object>();
  auto cap = [&](const char* name, uint32_t dflt) {
    Napi::Value v = caps.Get(name);
    return v.IsUndefined() ? dflt : ValueU32(env, v, name);
  };
  ibv_qp_init_attr a{};
  a.qp_type = IBV_QPT_RC;
  a.send_cq = scq->cq();
  a.recv_cq = rcq->cq();
  a.cap.max_send_wr = cap("maxSendWr", 16);
  a.cap.max_recv_wr = cap("maxRecvWr", 16);
  a.cap.max_send_sge = cap("maxSendSge", 1);
  a.cap.max_recv_sge = cap("maxRecvSge", 1);
  a.cap.max_inline_data = cap("maxInlineData", 0);
  a.sq_sig_all = 0;
  // Name the device limit instead of a bare EINVAL from the provider.
  ibv_device_attr da{};
  int qrc = ibv_query_device(id_->verbs, &da);
  if (qrc) ThrowErrno(env, qrc, "ibv_query_device");
  {
    auto limit = [&](uint32_t want, int max, const char* what, const char* lim) {
      if (want > static_cast<uint32_t>(max))
        ThrowCode(env, "ERR_DEVICE_LIMIT", std::string(what) + " " + std::to_string(want) + " exceeds the device's " + lim +
                                               " (" + std::to_string(max) + ")");
    };
    limit(a.cap.max_send_wr, da.max_qp_wr, "maxSendWr", "max_qp_wr");
    limit(a.cap.max_recv_wr, da.max_qp_wr, "maxRecvWr", "max_qp_wr");
    limit(a.cap.max_send_sge, da.max_sge, "maxSendSge", "max_sge");
    limit(a.cap.max_recv_sge, da.max_sge, "maxRecvSge", "max_sge");
  }
  if (rdma_create_qp(id_, pd->pd(), &a)) ThrowErrno(env, errno, "rdma_create_qp");
  uint32_t maxSgeRd = da.max_sge_rd > 0 ? static_cast<uint32_t>(da.max_sge_rd) : 1;
  Napi::Object qp = NewQueuePair(env, id_->qp, id_, pd, a.cap.max_send_sge, a.cap.max_recv_sge, maxSgeRd, info[0].As<Napi::Object>(),
                                 info[1].As<Napi::Object>(), info[2].As<Napi::Object>(), Value());
  qp_ = Napi::ObjectWrap<QueuePair>::Unwrap(qp);
  qpObject_ = Napi::Persistent(qp);
  return qp;
}

// migrate(eventChannel): move this id's events to another channel (rdma_migrate_id)
Napi::Value CmId::Migrate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  EventChannel* ch = UnwrapArg<EventChannel>(env, info[0], Instance(env)->eventChannel, "EventChannel");
  if (ch == channel_) return env.Undefined();
  if (rdma_migrate_id(id_, ch->channel())) ThrowErrno(env, errno, "rdma_migrate_id");
  Reparent(channel_, ch, info[0].As<Napi::Object>());
  channel_ = ch;
  return env.Undefined();
}

// detach(): gives this id up (no QP on it yet) for EventChannel.adoptId() on
// another thread; this object closes without destroying the id. Events that
// reach the old channel before the adoption are acked and dropped.
Napi::Value CmId::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "CmId");
  if (qp_ && !qp_->closed()) ThrowCode(env, "ERR_QP_EXISTS", "a cm_id with a queue pair cannot be handed to another thread");
  rdma_cm_id* id = id_;
  id->context = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_handoffMutex);
    g_handoff.insert(id);
  }
  id_ = nullptr;  // Release() must not destroy it
  Close();
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(id)));
}

Napi::Value CmId::DeviceName(const Napi::CallbackInfo& info) {
  if (!id_ || !id_->verbs) return info.Env().Undefined();
  return Napi::String::New(info.Env(), ibv_get_device_name(id_->verbs->device));
}

Napi::Value CmId::GetDevice(const Napi::CallbackInfo& info) {
  if (!id_ || !id_->verbs) return info.Env().Undefined();
  return Device::ForContext(info.Env(), id_->verbs);
}

Napi::Value CmId::PortNum(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), id_ ? id_->port_num : 0); }

Napi::Value CmId::LocalAddress(const Napi::CallbackInfo& info) {
  if (!id_) return info.Env().Undefined();
  return AddrObject(info.Env(), rdma_get_local_addr(id_));
}

Napi::Value CmId::PeerAddress(const Napi::CallbackInfo& info) {
  if (!id_) return info.Env().Undefined();
  return AddrObject(info.Env(), rdma_get_peer_addr(id_));
}

Napi::Value CmId::Qp(const Napi::CallbackInfo& info) {
  if (qpObject_.IsEmpty() || !qp_ || qp_->closed()) return info.Env().Undefined();
  return qpObject_.Value();
}

Napi::Function CmId::Define(Napi::Env env) {
  return DefineClass(env, "CmId", Common({
      InstanceAccessor<&CmId::DeviceName>("deviceName"),
      InstanceAccessor<&CmId::GetDevice>("device"),
      InstanceAccessor<&CmId::PortNum>("portNum"),
      InstanceAccessor<&CmId::LocalAddress>("localAddress"),
      InstanceAccessor<&CmId::PeerAddress>("peerAddress"),
      InstanceAccessor<&CmId::Qp>("qp"),
      InstanceMethod<&CmId::ResolveAddr>("resolveAddr"),
      InstanceMethod<&CmId::ResolveRoute>("resolveRoute"),
      InstanceMethod<&CmId::Bind>("bind"),
      InstanceMethod<&CmId::Listen>("listen"),
      InstanceMethod<&CmId::Connect>("connect"),
      InstanceMethod<&CmId::Accept>("accept"),
      InstanceMethod<&CmId::Reject>("reject"),
      InstanceMethod<&CmId::Disconnect>("disconnect"),
      InstanceMethod<&CmId::CreateQp>("createQp"),
      InstanceMethod<&CmId::Migrate>("migrate"),
      InstanceMethod<&CmId::Detach>("detach"),
  }));
}

void InitCm(Napi::Env env, Napi::Object exports, InstanceData* data) {
  Napi::Function ch = EventChannel::Define(env), id = CmId::Define(env);
  data->eventChannel = Napi::Persistent(ch);
  data->cmId = Napi::Persistent(id);
  exports.Set("EventChannel", ch);
  exports.Set("CmId", id);
  exports.Set("createEventChannel", Napi::Function::New(env, CreateEventChannel, "createEventChannel"));
  exports.Set("destroyDetachedId", Napi::Function::New(env, DestroyDetachedId, "destroyDetachedId"));
}

}  // namespace smbdirect
