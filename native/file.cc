// Files: advisory locks on images, and fallocate (space reservation, hole punching) both
// on the loop thread and on the thread pool.

#include <linux/falloc.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"
#include "blocking-call.h"

namespace zbd {
namespace {

Napi::Value Flock(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd = a.Fd(0);
  bool exclusive = a.Bool(1);
  bool nonblocking = a.Bool(2);
  if (!a.Ok()) return Napi::Value();
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (nonblocking ? LOCK_NB : 0);
  int r;
  do r = flock(fd, op);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EWOULDBLOCK && nonblocking) return Napi::Boolean::New(info.Env(), false);
    return ThrowErrno(info.Env(), "flock", errno,
                      "fd=" + Str(fd) + (exclusive ? ", LOCK_EX" : ", LOCK_SH") +
                          (nonblocking ? "|LOCK_NB" : ""));
  }
  return Napi::Boolean::New(info.Env(), true);
}

// One fallocate(2) call: its arguments as JavaScript passed them, retried on EINTR.
struct FallocateCall {
  int fd;
  int mode;
  int64_t offset;
  int64_t length;

  static FallocateCall From(Args& a) {
    FallocateCall c{};
    c.fd = a.Fd(0);
    c.mode = static_cast<int>(a.Int(1, INT_MAX));
    c.offset = a.Int(2);
    c.length = a.Int(3);
    return c;
  }
  // 0, or the errno of the failure.
  int Run() const {
    int r;
    do r = fallocate(fd, mode, offset, length);
    while (r < 0 && errno == EINTR);
    return r < 0 ? errno : 0;
  }
  std::string Detail() const {
    return "fd=" + Str(fd) + ", mode=" + Str(mode) + ", offset=" + Str(offset) + ", length=" + Str(length);
  }
  Napi::Value Result(Napi::Env env) const { return env.Undefined(); }
};

Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  Args a(info);
  FallocateCall call = FallocateCall::From(a);
  if (!a.Ok()) return Napi::Value();
  if (int err = call.Run()) return ThrowErrno(info.Env(), "fallocate", err, call.Detail());
  return info.Env().Undefined();
}

// fallocateAsync(fd, mode, offset, length, callback(err)): fallocate on the libuv thread
// pool, so a hole punched for a zone reset does not stall the other zones' requests.
Napi::Value FallocateAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  FallocateCall call = FallocateCall::From(a);
  a.Check(4, info[4].IsFunction());
  if (!a.Ok()) return Napi::Value();
  (new BlockingCallWorker<FallocateCall>(info[4].As<Napi::Function>(), "fallocateAsync", "fallocate", call))->Queue();
  return info.Env().Undefined();
}

// preadNowait(fd, views: Uint8Array | Uint8Array[], offset) => bytes read, or -errno.
// preadv2 with RWF_NOWAIT: the read happens on this thread only if it needs no wait (the
// data is in the page cache); otherwise -EAGAIN, and the caller hands it to io_uring. For a
// lone cached read this is one plain system call where io_uring costs a submission, a
// completion and more calls into the addon. Failures are returned, not thrown: which of
// them mean "use the ring" (EAGAIN, EOPNOTSUPP) is the caller's decision.
Napi::Value PreadNowait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  int fd = a.Fd(0);
  int64_t offset = a.Int(2);
  if (!a.Ok()) return Napi::Value();
  // One iovec list for the JavaScript thread, reused: no allocation once warmed up.
  static std::vector<iovec> iov;
  if (!IovecsFromViews(env, info[1], iov, "preadNowait", IOV_MAX)) return Napi::Value();
  ssize_t r;
  do r = preadv2(fd, iov.data(), static_cast<int>(iov.size()), offset, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  return Napi::Number::New(env, r < 0 ? -static_cast<double>(errno) : static_cast<double>(r));
}

}  // namespace

void ExportFile(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"flock", Flock},
                   {"fallocate", Fallocate},
                   {"fallocateAsync", FallocateAsync},
                   {"preadNowait", PreadNowait}});
  exports.Set("FALLOC_FL_KEEP_SIZE", Napi::Number::New(env, FALLOC_FL_KEEP_SIZE));
  exports.Set("FALLOC_FL_PUNCH_HOLE", Napi::Number::New(env, FALLOC_FL_PUNCH_HOLE));
}

}  // namespace zbd
