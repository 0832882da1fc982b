// Native layer of vhost-user-zbd: only what JavaScript cannot do. One file per concern:
//   socket.cc      unix sockets that pass fds (vhost-user control socket)
//   memory.cc      memfd, mmap/munmap of guest memory, barriers, page size and alignment
//   poll.cc        eventfd counters, fds polled on the Node loop, blocking poll
//   file.cc        flock, fallocate (also on the thread pool)
//   zone-ioctl.cc  zoned block device ioctls (also on the thread pool)
//   io-ring.cc     io_uring file I/O
// sharing addon.h (per-environment state, errors), args.h (argument checks) and
// blocking-call.h (one system call on the libuv thread pool). This file holds the module's
// entry point and the errors every concern throws.

#include <napi.h>

#include <cstring>
#include <string>

#include "addon.h"

namespace zbd {

Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data != nullptr && !data->errorFactory.IsEmpty()) {
    Napi::Value e = data->errorFactory.Call({Napi::String::New(env, syscall),
                                             Napi::Number::New(env, err),
                                             Napi::String::New(env, detail)});
    if (env.IsExceptionPending()) return env.GetAndClearPendingException();
    if (e.IsObject()) return Napi::Error(env, e);
  }
  // No factory (addon loaded without the wrapper): a plain Error with the same facts.
  Napi::Error e = Napi::Error::New(
      env, std::string(syscall) + "(" + detail + ") failed: " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

Napi::Value ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& detail) {
  ErrnoError(env, syscall, err, detail).ThrowAsJavaScriptException();
  return Napi::Value();
}

namespace {

Napi::Value SetErrorFactory(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(info.Env(), "setErrorFactory: function expected")
        .ThrowAsJavaScriptException();
    return Napi::Value();
  }
  info.Env().GetInstanceData<AddonData>()->errorFactory =
      Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace
}  // namespace zbd

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new zbd::AddonData());
  zbd::ExportFunctions(env, exports, {{"setErrorFactory", zbd::SetErrorFactory}});
  zbd::ExportSocket(env, exports);
  zbd::ExportPoll(env, exports);
  zbd::ExportMemory(env, exports);
  zbd::ExportFile(env, exports);
  zbd::ExportZoneIoctl(env, exports);
  zbd::ExportIoRing(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vhost_user_zbd_native, Init)
