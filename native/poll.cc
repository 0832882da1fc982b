// Waiting on fds: eventfd counters (vhost-user kick and call), fds watched on the Node loop
// (FdPoller), and a blocking poll for the benchmark's load generator.

#include <napi.h>
#include <uv.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>

#include "addon.h"
#include "args.h"

namespace zbd {
namespace {

// ---- eventfd counters --------------------------------------------------------------------

Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return ThrowErrno(info.Env(), "eventfd", errno, "0, EFD_NONBLOCK|EFD_CLOEXEC");
  return Napi::Number::New(info.Env(), fd);
}

// The counter is a host-order u64, as eventfd requires. On the little-endian hosts we
// run on, that is also the little-endian u64 a socket peer (UML's call fd) expects.
Napi::Value WriteCounter(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd = a.Fd(0);
  uint64_t value = static_cast<uint64_t>(a.Int(1));
  if (!a.Ok()) return Napi::Value();
  ssize_t n;
  do n = write(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n == sizeof value) return Napi::Boolean::New(info.Env(), true);
  // Every guest notification comes through here: the detail is built only on failure.
  auto detail = [&] { return "fd=" + Str(fd) + ", value=" + std::to_string(value); };
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
    return ThrowErrno(info.Env(), "write", errno, detail());
  }
  // eventfd and unix stream sockets take 8 bytes whole or not at all; anything else
  // would desynchronise the peer.
  return ThrowErrno(info.Env(), "write", EIO, detail() + ", short write " + Str(n));
}

Napi::Value ReadCounter(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd = a.Fd(0);
  if (!a.Ok()) return Napi::Value();
  uint64_t value = 0;
  ssize_t n;
  do n = read(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(info.Env(), 0);
    return ThrowErrno(info.Env(), "read", errno, "fd=" + Str(fd));
  }
  if (n == 0) return Napi::Number::New(info.Env(), -1);  // socket peer closed
  if (n != sizeof value) return ThrowErrno(info.Env(), "read", EIO, "fd=" + Str(fd) + ", short read " + Str(n));
  return Napi::Number::New(info.Env(), static_cast<double>(value));
}

// ---- synchronous wait (benchmark load generator) ----------------------------------------

// poll() for readability on up to 64 fds, blocking the calling thread up to timeoutMs
// (-1 = forever). The benchmark's load generator runs in its own process and sleeps here
// between completions instead of spinning or paying an event-loop round trip. Returns the
// number of readable fds (0 on timeout); fds[i] is set to -1 where nothing was ready.
Napi::Value PollFds(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Int32Array fds = a.Int32s(0);
  int64_t timeout = a.Int(1, INT_MAX);
  if (!a.Ok()) return Napi::Value();
  size_t n = fds.ElementLength();
  if (n > 64) return ThrowErrno(info.Env(), "poll", EINVAL, "nfds=" + Str(n));
  struct pollfd p[64];
  for (size_t i = 0; i < n; i++) p[i] = {fds[i], POLLIN, 0};
  int r;
  do r = poll(p, n, timeout == INT_MAX ? -1 : static_cast<int>(timeout));
  while (r < 0 && errno == EINTR);
  if (r < 0) return ThrowErrno(info.Env(), "poll", errno, "nfds=" + Str(n));
  for (size_t i = 0; i < n; i++) if (p[i].revents == 0) fds[i] = -1;
  return Napi::Number::New(info.Env(), r);
}

// ---- fd polling --------------------------------------------------------------------------

class FdPoller;

// The uv_poll_t and what must live exactly as long as it. libuv owns the handle from
// uv_close() until its close callback, which may come after the JS poller is collected.
// The async cleanup hook spans that whole life: at environment teardown (a worker
// exiting) Node calls it and then waits for its removal, which happens in the close
// callback. Without it, a worker could unload this addon while libuv still holds a close
// callback pointing into it.
struct PollWatch {
  uv_poll_t handle;
  napi_async_cleanup_hook_handle hook = nullptr;
  FdPoller* owner = nullptr;  // null once polling has stopped
};

// Watches one fd on the Node loop: callback(err, readable, writable). While polling, the
// JS object is pinned (a strong reference), so a watched fd does not go quiet just
// because nobody holds the poller any more.
class FdPoller : public Napi::ObjectWrap<FdPoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FdPoller",
                       {InstanceMethod<&FdPoller::SetEvents>("setEvents"),
                        InstanceMethod<&FdPoller::Stop>("stop"),
                        InstanceMethod<&FdPoller::JsRef>("ref"),
                        InstanceMethod<&FdPoller::JsUnref>("unref")});
  }

  // new FdPoller(fd, events: POLL_READABLE and/or POLL_WRITABLE, callback)
  explicit FdPoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FdPoller>(info) {
    Napi::Env env = info.Env();
    Args a(info);
    fd_ = a.Fd(0);
    int events = static_cast<int>(a.Int(1, UV_READABLE | UV_WRITABLE));
    a.Check(2, info[2].IsFunction());
    if (!a.Ok()) return;
    if (events == 0) {
      Napi::TypeError::New(env, "native addon: no events to poll").ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    PollWatch* watch = new PollWatch();
    int r = uv_poll_init(loop, &watch->handle, fd_);
    if (r < 0) {
      delete watch;  // never initialised, so libuv holds no reference to it
      ThrowErrno(env, "uv_poll_init", -r, "fd=" + Str(fd_));
      return;
    }
    watch->handle.data = watch;
    watch->owner = this;
    napi_add_async_cleanup_hook(env, OnTeardown, watch, &watch->hook);
    watch_ = watch;
    r = uv_poll_start(&watch->handle, events, OnPoll);
    if (r < 0) {
      Close(false);
      ThrowErrno(env, "uv_poll_start", -r, "fd=" + Str(fd_) + ", events=" + Str(events));
      return;
    }
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());
    Ref();
    pinned_ = true;
  }

  ~FdPoller() override { Close(true); }

 private:
  Napi::Value SetEvents(const Napi::CallbackInfo& info) {
    Args a(info);
    int events = static_cast<int>(a.Int(0, UV_READABLE | UV_WRITABLE));
    if (!a.Ok()) return Napi::Value();
    if (watch_ == nullptr) return Napi::Boolean::New(info.Env(), false);  // stopped
    if (events == 0) {
      Napi::TypeError::New(info.Env(), "native addon: no events to poll").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    int r = uv_poll_start(&watch_->handle, events, OnPoll);
    if (r < 0) return ThrowErrno(info.Env(), "uv_poll_start", -r, "fd=" + Str(fd_) + ", events=" + Str(events));
    return Napi::Boolean::New(info.Env(), true);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Close(false);
    return info.Env().Undefined();
  }

  Napi::Value JsRef(const Napi::CallbackInfo& info) {
    if (watch_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&watch_->handle));
    return info.Env().Undefined();
  }

  Napi::Value JsUnref(const Napi::CallbackInfo& info) {
    if (watch_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&watch_->handle));
    return info.Env().Undefined();
  }

  // Stops polling for good and hands the handle to uv_close. Idempotent. The fd belongs
  // to the caller and stays open. `dying` means the JS object or the environment is going
  // away, so the JS references must not be touched.
  void Close(bool dying) {
    if (watch_ == nullptr) return;
    PollWatch* watch = watch_;
    watch_ = nullptr;
    watch->owner = nullptr;
    uv_poll_stop(&watch->handle);  // takes the fd out of epoll now: the caller may close it
    uv_close(reinterpret_cast<uv_handle_t*>(&watch->handle), OnClosed);
    if (pinned_) {
      pinned_ = false;
      if (!dying) {
        callback_.Reset();
        Unref();
      }
    }
  }

  static void OnClosed(uv_handle_t* handle) {
    PollWatch* watch = static_cast<PollWatch*>(handle->data);
    if (watch->hook != nullptr) napi_remove_async_cleanup_hook(watch->hook);
    delete watch;
  }

  static void OnTeardown(napi_async_cleanup_hook_handle, void* arg) {
    PollWatch* watch = static_cast<PollWatch*>(arg);
    // Already closing: OnClosed removes the hook, which tells Node we are done.
    if (watch->owner != nullptr) watch->owner->Close(true);
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    FdPoller* self = static_cast<PollWatch*>(handle->data)->owner;
    if (self == nullptr) return;  // stopped earlier in this loop iteration
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Value err = env.Null();
    if (status < 0) err = ErrnoError(env, "uv_poll", -status, "fd=" + Str(self->fd_)).Value();
    napi_value argv[] = {err,
                         Napi::Boolean::New(env, status >= 0 && (events & UV_READABLE) != 0),
                         Napi::Boolean::New(env, status >= 0 && (events & UV_WRITABLE) != 0)};
    // Hold the function and the object in this scope: the callback may call stop().
    Napi::Function fn = self->callback_.Value();
    Napi::Object recv = self->Value();
    napi_value result;
    // napi_make_callback (not a plain call) so that promise jobs queued by the callback
    // run before we return to libuv, as they do after any Node I/O callback.
    if (napi_make_callback(env, nullptr, recv, fn, 3, argv, &result) == napi_pending_exception) {
      // There is no JavaScript caller to throw to: report it as uncaught, like Node would.
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
    }
  }

  PollWatch* watch_ = nullptr;  // null once stopped
  int fd_ = -1;
  bool pinned_ = false;
  Napi::FunctionReference callback_;
};

}  // namespace

void ExportPoll(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"eventfd", Eventfd},
                   {"writeCounter", WriteCounter},
                   {"readCounter", ReadCounter},
                   {"pollFds", PollFds}});
  exports.Set("FdPoller", FdPoller::Define(env));
  exports.Set("POLL_READABLE", Napi::Number::New(env, UV_READABLE));
  exports.Set("POLL_WRITABLE", Napi::Number::New(env, UV_WRITABLE));
}

}  // namespace zbd
