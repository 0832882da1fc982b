// Zoned block device ioctls (linux/blkzoned.h): zone size and count, zone reports and zone
// management, on the loop thread or, for a real drive that may take seconds, on the
// thread pool.

#include <linux/blkzoned.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "addon.h"
#include "args.h"
#include "blocking-call.h"

namespace zbd {
namespace {

// The wrapper documents these sizes to its callers, who parse the report buffer.
static_assert(sizeof(blk_zone_report) == 16, "blk_zone_report header is 16 bytes");
static_assert(sizeof(blk_zone) == 64, "blk_zone is 64 bytes");

Napi::Value IoctlU32(const Napi::CallbackInfo& info, unsigned long request, const char* name) {
  Args a(info);
  int fd = a.Fd(0);
  if (!a.Ok()) return Napi::Value();
  uint32_t value = 0;
  if (ioctl(fd, request, &value) < 0) {
    return ThrowErrno(info.Env(), "ioctl", errno, "fd=" + Str(fd) + ", " + name);
  }
  return Napi::Number::New(info.Env(), value);
}

Napi::Value BlkGetZoneSize(const Napi::CallbackInfo& info) {
  return IoctlU32(info, BLKGETZONESZ, "BLKGETZONESZ");
}

Napi::Value BlkGetNrZones(const Napi::CallbackInfo& info) {
  return IoctlU32(info, BLKGETNRZONES, "BLKGETNRZONES");
}

// One BLKREPORTZONE call into a caller's buffer: blk_zone_report header, then the blk_zone
// array. The buffer need not be aligned: the kernel copies it in and out, and the header
// is accessed here with memcpy only.
struct ReportZonesCall {
  int fd = -1;
  uint64_t sector = 0;
  uint8_t* data = nullptr;
  size_t length = 0;
  uint32_t zones = 0;  // asked for, then reported

  // Arguments (fd, sector, buf); false after throwing a TypeError.
  static bool From(const Napi::CallbackInfo& info, Args& a, ReportZonesCall* c) {
    c->fd = a.Fd(0);
    c->sector = static_cast<uint64_t>(a.Int(1));
    Napi::Uint8Array buf = a.Bytes(2);
    if (!a.Ok()) return false;
    if (buf.ByteLength() < sizeof(blk_zone_report) + sizeof(blk_zone)) {
      Napi::TypeError::New(info.Env(), "native addon: report buffer too small").ThrowAsJavaScriptException();
      return false;
    }
    c->data = buf.Data();
    c->length = buf.ByteLength();
    return true;
  }
  // 0, or the errno of the failure; on success `zones` holds the zones reported.
  int Run() {
    blk_zone_report header{};
    header.sector = sector;
    header.nr_zones = zones = static_cast<uint32_t>((length - sizeof header) / sizeof(blk_zone));
    memcpy(data, &header, sizeof header);
    if (ioctl(fd, BLKREPORTZONE, data) < 0) return errno;
    memcpy(&header, data, sizeof header);
    zones = header.nr_zones;
    return 0;
  }
  std::string Detail() const {
    return "fd=" + Str(fd) + ", BLKREPORTZONE, sector=" + std::to_string(sector) + ", nr_zones=" + Str(zones);
  }
  Napi::Value Result(Napi::Env env) const { return Napi::Number::New(env, zones); }
};

// blkReportZones(fd, sector, buf) => zones reported.
Napi::Value BlkReportZones(const Napi::CallbackInfo& info) {
  Args a(info);
  ReportZonesCall call;
  if (!ReportZonesCall::From(info, a, &call)) return Napi::Value();
  if (int err = call.Run()) return ThrowErrno(info.Env(), "ioctl", err, call.Detail());
  return Napi::Number::New(info.Env(), call.zones);
}

struct ZoneOp {
  const char* name;
  unsigned long request;
};
// BLK_ZONE_OP values are the ioctl request numbers themselves; this table is the whitelist.
constexpr ZoneOp kZoneOps[] = {{"RESET", BLKRESETZONE},
                               {"OPEN", BLKOPENZONE},
                               {"CLOSE", BLKCLOSEZONE},
                               {"FINISH", BLKFINISHZONE}};

// One zone management ioctl over a sector range.
struct ZoneMgmtCall {
  int fd = -1;
  const ZoneOp* op = nullptr;
  blk_zone_range range{};

  // Arguments (fd, request, sector, nrSectors); false after throwing a TypeError.
  static bool From(const Napi::CallbackInfo& info, Args& a, ZoneMgmtCall* c) {
    c->fd = a.Fd(0);
    int64_t request = a.Int(1);
    c->range.sector = static_cast<uint64_t>(a.Int(2));
    c->range.nr_sectors = static_cast<uint64_t>(a.Int(3));
    if (!a.Ok()) return false;
    for (const ZoneOp& candidate : kZoneOps) {
      if (static_cast<int64_t>(candidate.request) == request) c->op = &candidate;
    }
    if (c->op == nullptr) {
      Napi::TypeError::New(info.Env(), "native addon: unknown zone op").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }
  int Run() { return ioctl(fd, op->request, &range) < 0 ? errno : 0; }
  std::string Detail() const {
    return "fd=" + Str(fd) + ", BLK" + op->name + "ZONE, sector=" + std::to_string(range.sector) +
           ", nr_sectors=" + std::to_string(range.nr_sectors);
  }
  Napi::Value Result(Napi::Env env) const { return env.Undefined(); }
};

// blkZoneMgmt(fd, request, sector, nrSectors): open/close/finish/reset a range of zones.
Napi::Value BlkZoneMgmt(const Napi::CallbackInfo& info) {
  Args a(info);
  ZoneMgmtCall call;
  if (!ZoneMgmtCall::From(info, a, &call)) return Napi::Value();
  if (int err = call.Run()) return ThrowErrno(info.Env(), "ioctl", err, call.Detail());
  return info.Env().Undefined();
}

// blkReportZonesAsync(fd, sector, buf, callback(err, zones)): BlkReportZones off the loop.
Napi::Value BlkReportZonesAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  ReportZonesCall call;
  a.Check(3, info[3].IsFunction());
  if (!ReportZonesCall::From(info, a, &call)) return Napi::Value();
  auto* worker = new BlockingCallWorker<ReportZonesCall>(info[3].As<Napi::Function>(), "blkReportZonesAsync", "ioctl", call);
  worker->Keep(info[2].As<Napi::Uint8Array>());  // the kernel writes the report into it
  worker->Queue();
  return info.Env().Undefined();
}

// blkZoneMgmtAsync(fd, request, sector, nrSectors, callback(err)): BlkZoneMgmt off the loop.
Napi::Value BlkZoneMgmtAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  ZoneMgmtCall call;
  a.Check(4, info[4].IsFunction());
  if (!ZoneMgmtCall::From(info, a, &call)) return Napi::Value();
  (new BlockingCallWorker<ZoneMgmtCall>(info[4].As<Napi::Function>(), "blkZoneMgmtAsync", "ioctl", call))->Queue();
  return info.Env().Undefined();
}

}  // namespace

void ExportZoneIoctl(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"blkGetZoneSize", BlkGetZoneSize},
                   {"blkGetNrZones", BlkGetNrZones},
                   {"blkReportZones", BlkReportZones},
                   {"blkZoneMgmt", BlkZoneMgmt},
                   {"blkReportZonesAsync", BlkReportZonesAsync},
                   {"blkZoneMgmtAsync", BlkZoneMgmtAsync}});
  Napi::Object zoneOps = Napi::Object::New(env);
  for (const ZoneOp& op : kZoneOps) zoneOps.Set(op.name, Napi::Number::New(env, op.request));
  exports.Set("BLK_ZONE_OP", zoneOps);
}

}  // namespace zbd
