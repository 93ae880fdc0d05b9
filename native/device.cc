// Devices: list, open, query; the device's async event fd on uv_poll.
#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>

#include "objects.h"

namespace smbdirect {

// Devices are librdmacm's contexts: PDs, CQs and QPs used with a cm_id must come from the same
// context as cm_id->verbs, so a Device is always one of those rather than a second
// ibv_open_device(). librdmacm keeps one context per device for the process and closes it only
// when the device is gone (a sync of its device list noticed) and nothing references it any more:
// until then the kernel cannot finish removing the device (`rdma link delete` waits for every
// user's context to close: rxe and siw cannot disassociate a live one). rdma_get_devices() takes a
// reference on every device for the list it returns (and syncs the list first);
// rdma_free_devices() gives back one for each context in the list it is given, and frees that
// list. A Device holds exactly one reference, on its own context: a list of that context alone.
// (An earlier build kept the first rdma_get_devices() list for the life of the process: a removed
// device's context was never closed, so its removal never finished, and a device created later
// was never found.)
static ibv_context** AcquireContext(const std::string* name, ibv_context* want, ibv_context** found, int* err) {
  int n = 0;
  errno = 0;
  ibv_context** all = rdma_get_devices(&n);
  if (!all) {
    *err = errno ? errno : ENODEV;
    return nullptr;
  }
  ibv_context* hit = nullptr;
  for (int i = 0; i < n && !hit; i++) {
    if (name ? *name == ibv_get_device_name(all[i]->device) : all[i] == want) hit = all[i];
  }
  auto* one = static_cast<ibv_context**>(calloc(2, sizeof(ibv_context*)));
  auto* rest = static_cast<ibv_context**>(calloc(static_cast<size_t>(n) + 1, sizeof(ibv_context*)));
  if (!one || !rest) {
    free(one);
    free(rest);
    rdma_free_devices(all);
    *err = ENOMEM;
    return nullptr;
  }
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (all[i] != hit) rest[k++] = all[i];
  }
  rdma_free_devices(rest);  // the other devices' references (and the array)
  free(all);                // the list itself: its reference on `hit` is now `one`'s
  if (!hit) {
    free(one);
    *err = ENODEV;
    return nullptr;
  }
  one[0] = hit;
  *found = hit;
  return one;
}

// Gives back a Device's reference; with `sync`, librdmacm then syncs its device list, which closes
// the context of a removed device nothing references any more.
static void ReleaseContext(ibv_context** ref, bool sync) {
  rdma_free_devices(ref);
  if (!sync) return;
  int n = 0;
  ibv_context** all = rdma_get_devices(&n);
  if (all) rdma_free_devices(all);
}

static Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n = 0;
  errno = 0;
  ibv_device** devs = ibv_get_device_list(&n);
  if (!devs) ThrowErrno(env, errno ? errno : ENOSYS, "ibv_get_device_list");
  Napi::Array out = Napi::Array::New(env, n);
  for (int i = 0; i < n; i++) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", ibv_get_device_name(devs[i]));
    d.Set("nodeType", devs[i]->node_type == IBV_NODE_RNIC ? "rnic" : devs[i]->node_type == IBV_NODE_CA ? "ca" : "other");
    d.Set("transport", devs[i]->transport_type == IBV_TRANSPORT_IWARP ? "iwarp" : devs[i]->transport_type == IBV_TRANSPORT_IB ? "ib" : "other");
    char guid[24];
    uint64_t g = be64toh(ibv_get_device_guid(devs[i]));
    snprintf(guid, sizeof guid, "%04x:%04x:%04x:%04x", unsigned(g >> 48) & 0xffff, unsigned(g >> 32) & 0xffff,
             unsigned(g >> 16) & 0xffff, unsigned(g) & 0xffff);
    d.Set("guid", guid);
    out.Set(i, d);
  }
  ibv_free_device_list(devs);
  return out;
}


static Napi::Value OpenDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) ThrowType(env, "device name must be a string");
  return Device::Open(env, info[0].As<Napi::String>());
}

Napi::Value Device::Open(Napi::Env env, const std::string& name) {
  auto& open = Instance(env)->devices;
  for (auto& e : open) {
    auto* d = static_cast<Device*>(e.second);
    if (!d->removed_ && d->name_ == name) return d->Value();
  }
  int err = 0;
  ibv_context* ctx = nullptr;
  ibv_context** ref = AcquireContext(&name, nullptr, &ctx, &err);
  if (!ref) ThrowErrno(env, err, "ibv_open_device");
  auto it = open.find(ctx);
  if (it != open.end()) {
    ReleaseContext(ref, false);
    return static_cast<Device*>(it->second)->Value();
  }
  return New(env, ctx, ref);
}

Napi::Object Device::ForContext(Napi::Env env, ibv_context* ctx) {
  auto& open = Instance(env)->devices;
  auto it = open.find(ctx);
  if (it != open.end()) return static_cast<Device*>(it->second)->Value();
  int err = 0;
  ibv_context* found = nullptr;
  // a context librdmacm no longer lists is a removed device's: ENODEV
  ibv_context** ref = AcquireContext(nullptr, ctx, &found, &err);
  if (!ref) ThrowErrno(env, err, "ibv_open_device");
  return New(env, ctx, ref);
}

struct DeviceInit {
  ibv_context* ctx;
  ibv_context** ref;
  bool taken;
};

Napi::Object Device::New(Napi::Env env, ibv_context* ctx, ibv_context** ref) {
  DeviceInit init{ctx, ref, false};
  try {
    return Instance(env)->device.New({Napi::External<DeviceInit>::New(env, &init)});
  } catch (...) {
    if (!init.taken) ReleaseContext(ref, false);
    throw;
  }
}

Device::Device(const Napi::CallbackInfo& info) : Wrapped(info), env_(info.Env()) {
  auto* init = CtorArg<DeviceInit>(info, "Device");
  ctx_ = init->ctx;
  ref_ = init->ref;
  init->taken = true;
  name_ = ibv_get_device_name(ctx_->device);
  Instance(info.Env())->devices[ctx_] = this;
  // A device stays open until close(): its children hold it, and so does the map.
  Ref();
}

void Device::Release() {
  asyncPoll_.Stop();
  onAsync_.Reset();
  if (InstanceData* d = Instance(env_)) {
    auto it = d->devices.find(ctx_);
    if (it != d->devices.end() && it->second == this) d->devices.erase(it);
  }
  // Unref from the constructor; not during GC/teardown where the ref is moot.
  if (!in_finalizer) Unref();
  ctx_ = nullptr;  // librdmacm owns the context
  ibv_context** ref = ref_;
  ref_ = nullptr;
  if (ref) ReleaseContext(ref, true);
}

void Device::OnChildClosed() {
  if (removed_ && !closed() && !hasChildren()) Close();
}

void Device::NoteRemoved(Napi::Env env, ibv_context* ctx) {
  InstanceData* d = Instance(env);
  if (!d) return;
  auto it = d->devices.find(ctx);
  if (it == d->devices.end()) return;
  auto* dev = static_cast<Device*>(it->second);
  dev->removed_ = true;
  if (!dev->hasChildren()) dev->Close();
}

Napi::Value Device::Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

Napi::Value Device::Query(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  ibv_device_attr a{};
  int rc = ibv_query_device(ctx_, &a);
  if (rc) ThrowErrno(env, rc, "ibv_query_device");
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name_);
  o.Set("nodeType", ctx_->device->node_type == IBV_NODE_RNIC ? "rnic" : "ca");
  o.Set("transport", ctx_->device->transport_type == IBV_TRANSPORT_IWARP ? "iwarp" : "ib");
  o.Set("fwVer", a.fw_ver);
  o.Set("vendorId", a.vendor_id);
  o.Set("vendorPartId", a.vendor_part_id);
  o.Set("maxMrSize", Napi::BigInt::New(env, static_cast<uint64_t>(a.max_mr_size)));
  o.Set("maxQp", a.max_qp);
  o.Set("maxQpWr", a.max_qp_wr);
  o.Set("maxSge", a.max_sge);
  o.Set("maxSgeRd", a.max_sge_rd);
  o.Set("maxCq", a.max_cq);
  o.Set("maxCqe", a.max_cqe);
  o.Set("maxMr", a.max_mr);
  o.Set("maxPd", a.max_pd);
  o.Set("maxQpRdAtom", a.max_qp_rd_atom);
  o.Set("maxQpInitRdAtom", a.max_qp_init_rd_atom);
  o.Set("maxMw", a.max_mw);
  o.Set("physPortCnt", a.phys_port_cnt);
  o.Set("numCompVectors", ctx_->num_comp_vectors);
  o.Set("deviceCapFlags", a.device_cap_flags);
  bool mw = (a.device_cap_flags & IBV_DEVICE_MEM_WINDOW) && a.max_mw > 0;
  o.Set("memoryWindows", mw);
  o.Set("memoryWindowType2", mw && (a.device_cap_flags & (IBV_DEVICE_MEM_WINDOW_TYPE_2A | IBV_DEVICE_MEM_WINDOW_TYPE_2B)) != 0);
  return o;
}

static const char* PortState(ibv_port_state s) {
  switch (s) {
    case IBV_PORT_DOWN: return "down";
    case IBV_PORT_INIT: return "init";
    case IBV_PORT_ARMED: return "armed";
    case IBV_PORT_ACTIVE: return "active";
    case IBV_PORT_ACTIVE_DEFER: return "active-defer";
    default: return "nop";
  }
}

Napi::Value Device::QueryPort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  uint32_t port = OptU32(info, 0, "port", 1);
  if (port < 1 || port > 255) ThrowRange(env, "port must be in [1, 255]");
  ibv_port_attr a{};
  int rc = ibv_query_port(ctx_, static_cast<uint8_t>(port), &a);
  if (rc) ThrowErrno(env, rc, "ibv_query_port");
  Napi::Object o = Napi::Object::New(env);
  o.Set("port", port);
  o.Set("state", PortState(a.state));
  o.Set("linkLayer", a.link_layer == IBV_LINK_LAYER_ETHERNET ? "ethernet" : a.link_layer == IBV_LINK_LAYER_INFINIBAND ? "infiniband" : "unspecified");
  o.Set("maxMtu", 128 << a.max_mtu);
  o.Set("activeMtu", 128 << a.active_mtu);
  o.Set("maxMsgSize", a.max_msg_sz);
  o.Set("gidTableLength", a.gid_tbl_len);
  o.Set("lid", a.lid);
  o.Set("portCapFlags", a.port_cap_flags);
  return o;
}

Napi::Value Device::QueryGid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  uint32_t port = ArgU32(info, 0, "port");
  uint32_t index = ArgU32(info, 1, "index");
  ibv_gid_entry e{};
  int rc = ibv_query_gid_ex(ctx_, port, index, &e, 0);
  if (rc) ThrowErrno(env, rc > 0 ? rc : errno, "ibv_query_gid_ex");
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, e.gid.raw, text, sizeof text);
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", index);
  o.Set("gid", text);
  o.Set("type", e.gid_type == IBV_GID_TYPE_ROCE_V2 ? "RoCEv2" : e.gid_type == IBV_GID_TYPE_ROCE_V1 ? "RoCEv1" : "IB");
  o.Set("ndevIfindex", e.ndev_ifindex);
  return o;
}

Napi::Value Device::AllocPd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  ibv_pd* pd = ibv_alloc_pd(ctx_);
  if (!pd) ThrowErrno(env, errno, "ibv_alloc_pd");
  return Instance(env)->pd.New({Napi::External<ibv_pd>::New(env, pd), Value()});
}

Napi::Value Device::CreateCompChannel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  ibv_comp_channel* ch = ibv_create_comp_channel(ctx_);
  if (!ch) ThrowErrno(env, errno, "ibv_create_comp_channel");
  int rc = SetNonBlocking(ch->fd);
  if (rc) {
    ibv_destroy_comp_channel(ch);
    ThrowErrno(env, rc, "fcntl");
  }
  return Instance(env)->channel.New({Napi::External<ibv_comp_channel>::New(env, ch), Value()});
}

// createCq(cqe, channel | null, compVector, onBatch(count))
Napi::Value Device::CreateCq(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  return Instance(env)->cq.New({Value(), info[0], info[1], info[2], info[3]});
}

static const char* AsyncName(ibv_event_type t) {
  switch (t) {
    case IBV_EVENT_CQ_ERR: return "CQ_ERR";
    case IBV_EVENT_QP_FATAL: return "QP_FATAL";
    case IBV_EVENT_QP_REQ_ERR: return "QP_REQ_ERR";
    case IBV_EVENT_QP_ACCESS_ERR: return "QP_ACCESS_ERR";
    case IBV_EVENT_COMM_EST: return "COMM_EST";
    case IBV_EVENT_SQ_DRAINED: return "SQ_DRAINED";
    case IBV_EVENT_PATH_MIG: return "PATH_MIG";
    case IBV_EVENT_PATH_MIG_ERR: return "PATH_MIG_ERR";
    case IBV_EVENT_DEVICE_FATAL: return "DEVICE_FATAL";
    case IBV_EVENT_PORT_ACTIVE: return "PORT_ACTIVE";
    case IBV_EVENT_PORT_ERR: return "PORT_ERR";
    case IBV_EVENT_LID_CHANGE: return "LID_CHANGE";
    case IBV_EVENT_PKEY_CHANGE: return "PKEY_CHANGE";
    case IBV_EVENT_SM_CHANGE: return "SM_CHANGE";
    case IBV_EVENT_SRQ_ERR: return "SRQ_ERR";
    case IBV_EVENT_SRQ_LIMIT_REACHED: return "SRQ_LIMIT_REACHED";
    case IBV_EVENT_QP_LAST_WQE_REACHED: return "QP_LAST_WQE_REACHED";
    case IBV_EVENT_CLIENT_REREGISTER: return "CLIENT_REREGISTER";
    case IBV_EVENT_GID_CHANGE: return "GID_CHANGE";
    case IBV_EVENT_WQ_FATAL: return "WQ_FATAL";
  }
  return "UNKNOWN";
}

// onAsyncEvent(fn | null): fn(events[]) with {type, qpNum?, cqId?, port?}
Napi::Value Device::OnAsyncEvent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env, "Device");
  if (info[0].IsNull() || info[0].IsUndefined()) {
    asyncPoll_.Stop();
    onAsync_.Reset();
    return env.Undefined();
  }
  if (!info[0].IsFunction()) ThrowType(env, "handler must be a function");
  onAsync_ = Napi::Persistent(info[0].As<Napi::Function>());
  if (!asyncPoll_.active()) {
    int rc = SetNonBlocking(ctx_->async_fd);
    if (rc) ThrowErrno(env, rc, "fcntl");
    rc = asyncPoll_.Start(env, ctx_->async_fd, [this]() { DrainAsync(); }, false);
    if (rc) ThrowErrno(env, -rc, "uv_poll_start");
  }
  return env.Undefined();
}

void Device::DrainAsync() {
  Napi::Env env = env_;
  Napi::HandleScope scope(env);
  if (!CanCallJs(env)) return;
  Napi::Array events = Napi::Array::New(env);
  uint32_t n = 0;
  ibv_async_event ev;
  while (!closed() && ibv_get_async_event(ctx_, &ev) == 0) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("type", AsyncName(ev.event_type));
    o.Set("device", name_);
    switch (ev.event_type) {
      case IBV_EVENT_QP_FATAL: case IBV_EVENT_QP_REQ_ERR: case IBV_EVENT_QP_ACCESS_ERR:
      case IBV_EVENT_COMM_EST: case IBV_EVENT_SQ_DRAINED: case IBV_EVENT_PATH_MIG:
      case IBV_EVENT_PATH_MIG_ERR: case IBV_EVENT_QP_LAST_WQE_REACHED:
        o.Set("qpNum", ev.element.qp->qp_num);
        break;
      case IBV_EVENT_CQ_ERR:
        if (ev.element.cq->cq_context) o.Set("cqId", static_cast<CompletionQueue*>(ev.element.cq->cq_context)->id());
        break;
      case IBV_EVENT_PORT_ACTIVE: case IBV_EVENT_PORT_ERR: case IBV_EVENT_LID_CHANGE:
      case IBV_EVENT_PKEY_CHANGE: case IBV_EVENT_SM_CHANGE: case IBV_EVENT_CLIENT_REREGISTER:
      case IBV_EVENT_GID_CHANGE:
        o.Set("port", ev.element.port_num);
        break;
      default:
        break;
    }
    ibv_ack_async_event(&ev);
    events.Set(n++, o);
  }
  if (n > 0) CallJs(env, onAsync_, {events});
}

Napi::Function Device::Define(Napi::Env env) {
  return DefineClass(env, "Device", Common({
      InstanceAccessor<&Device::Name>("name"),
      InstanceMethod<&Device::Query>("query"),
      InstanceMethod<&Device::QueryPort>("queryPort"),
      InstanceMethod<&Device::QueryGid>("queryGid"),
      InstanceMethod<&Device::AllocPd>("allocPd"),
      InstanceMethod<&Device::CreateCompChannel>("createCompChannel"),
      InstanceMethod<&Device::CreateCq>("createCq"),
      InstanceMethod<&Device::OnAsyncEvent>("onAsyncEvent"),
  }));
}

// ---- CompletionChannel ----------------------------------------------------

CompletionChannel::CompletionChannel(const Napi::CallbackInfo& info) : Wrapped(info) {
  ch_ = CtorArg<ibv_comp_channel>(info, "CompletionChannel");
  device_ = UnwrapArg<Device>(info.Env(), info[1], Instance(info.Env())->device, "Device");
  Adopt(device_, info[1].As<Napi::Object>());
}

void CompletionChannel::Release() {
  poll_.Stop();
  pending_.clear();
  if (ch_) ibv_destroy_comp_channel(ch_);
  ch_ = nullptr;
}

Napi::Value CompletionChannel::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ch_ ? ch_->fd : -1);
}

Napi::Function CompletionChannel::Define(Napi::Env env) {
  return DefineClass(env, "CompletionChannel", Common({
      InstanceAccessor<&CompletionChannel::Fd>("fd"),
  }));
}

void InitDevice(Napi::Env env, Napi::Object exports, InstanceData* data) {
  Napi::Function device = Device::Define(env);
  data->device = Napi::Persistent(device);
  Napi::Function channel = CompletionChannel::Define(env);
  data->channel = Napi::Persistent(channel);
  exports.Set("Device", device);
  exports.Set("CompletionChannel", channel);
  exports.Set("listDevices", Napi::Function::New(env, ListDevices, "listDevices"));
  exports.Set("openDevice", Napi::Function::New(env, OpenDevice, "openDevice"));
}

}  // namespace smbdirect
