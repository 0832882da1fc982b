// Native layer of vhost-user-zbd: only what JavaScript cannot do. Pass fds over unix
// sockets, map shared memory, poll fds on the Node loop, issue ioctls.
//
// src/native/index.ts is the only module that loads this addon. It validates every
// argument and gives each function its type; this file makes the system calls. A failed
// system call is turned into an error by a factory the wrapper installs (setErrorFactory),
// so it reaches JavaScript as a ZbdError carrying errno, syscall and the argument values.
//
// Args below re-checks types and ranges only as a last line of defence against a wrapper
// bug: a wrong value must throw, never reach a system call as fd 0 or a null buffer.

#include <napi.h>
#include <uv.h>

#include <fcntl.h>
#include <linux/blkzoned.h>
#include <linux/falloc.h>
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

// The wrapper documents these sizes to its callers, who parse the report buffer.
static_assert(sizeof(blk_zone_report) == 16, "blk_zone_report header is 16 bytes");
static_assert(sizeof(blk_zone) == 64, "blk_zone is 64 bytes");

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// State per Node environment (main thread and each worker get their own).
struct AddonData {
  Napi::FunctionReference errorFactory;  // (syscall, errno, detail) => Error
  // Live mappings made by Mmap, keyed by address, so Munmap accepts only those and
  // unmaps each exactly once.
  std::unordered_map<void*, size_t> mappings;
};

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

std::string Str(int64_t v) { return std::to_string(v); }

// Close an fd on an error path without losing the errno being reported.
void CloseKeepErrno(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

// Typed access to call arguments. Each accessor returns a harmless value when the
// argument is wrong and remembers the failure; Ok() then throws once.
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info) {}

  int64_t Int(size_t i, double max = kMaxSafeInteger) {
    Napi::Value v = info_[i];
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= max && d == std::trunc(d))) return Fail(i);
    return static_cast<int64_t>(d);
  }
  int Fd(size_t i) { return static_cast<int>(Int(i, INT_MAX)); }
  bool Bool(size_t i) {
    if (!info_[i].IsBoolean()) return Fail(i);
    return info_[i].As<Napi::Boolean>().Value();
  }
  std::string String(size_t i) {
    if (!Check(i, info_[i].IsString())) return std::string();
    std::string s = info_[i].As<Napi::String>().Utf8Value();
    Check(i, !s.empty() && s.find('\0') == std::string::npos);
    return s;
  }
  bool Check(size_t i, bool valid) {
    if (!valid) Fail(i);
    return valid;
  }
  template <typename T>
  T Typed(size_t i, napi_typedarray_type type) {
    Napi::Value v = info_[i];
    bool valid = v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
    return Check(i, valid) ? v.As<T>() : T();
  }
  Napi::Uint8Array Bytes(size_t i) { return Typed<Napi::Uint8Array>(i, napi_uint8_array); }
  Napi::Int32Array Int32s(size_t i) { return Typed<Napi::Int32Array>(i, napi_int32_array); }

  bool Ok() {
    if (!ok_) {
      Napi::TypeError::New(info_.Env(), "native addon: invalid argument " + Str(bad_) +
                                            " (the wrapper should have rejected it)")
          .ThrowAsJavaScriptException();
    }
    return ok_;
  }

 private:
  int64_t Fail(size_t i) {
    if (ok_) bad_ = i;
    ok_ = false;
    return 0;
  }
  const Napi::CallbackInfo& info_;
  bool ok_ = true;
  size_t bad_ = 0;
};

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

// ---- unix sockets ----------------------------------------------------------------------

bool MakeAddress(const std::string& path, sockaddr_un* addr) {
  *addr = sockaddr_un{};
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof addr->sun_path) return false;  // room for the NUL
  memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  std::string path = a.String(0);
  int backlog = static_cast<int>(a.Int(1, INT_MAX));
  sockaddr_un addr;
  if (!a.Ok()) return Napi::Value();
  if (!MakeAddress(path, &addr)) return ThrowErrno(env, "bind", ENAMETOOLONG, "path=" + path);

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno, "AF_UNIX, SOCK_STREAM");
  std::string detail = "fd=" + Str(fd) + ", path=" + path;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "bind", errno, detail);
  }
  // Restrict the socket file to our user before listen(): until listen() every connect()
  // is refused, so no other user can slip in while the file has umask permissions.
  const char* failed = nullptr;
  if (chmod(path.c_str(), 0600) < 0) {
    failed = "chmod";
  } else if (listen(fd, backlog) < 0) {
    failed = "listen";
  }
  if (failed != nullptr) {
    int err = errno;
    unlink(path.c_str());  // we created it; do not leave a dead socket file behind
    close(fd);
    return ThrowErrno(env, failed, err, detail + ", backlog=" + Str(backlog));
  }
  return Napi::Number::New(env, fd);
}

Napi::Value AcceptUnix(const Napi::CallbackInfo& info) {
  Args a(info);
  int listenFd = a.Fd(0);
  if (!a.Ok()) return Napi::Value();
  for (;;) {
    int fd = accept4(listenFd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return Napi::Number::New(info.Env(), fd);
    // ECONNABORTED: a queued peer gave up before we got to it; try the next one.
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(info.Env(), -1);
    return ThrowErrno(info.Env(), "accept4", errno, "fd=" + Str(listenFd));
  }
}

Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  std::string path = a.String(0);
  sockaddr_un addr;
  if (!a.Ok()) return Napi::Value();
  if (!MakeAddress(path, &addr)) return ThrowErrno(env, "connect", ENAMETOOLONG, "path=" + path);

  // Blocking connect, so the caller gets a connected socket or an error, never
  // EINPROGRESS; only afterwards does the socket become non-blocking for the event loop.
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno, "AF_UNIX, SOCK_STREAM");
  std::string detail = "fd=" + Str(fd) + ", path=" + path;
  int r;
  do r = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "connect", errno, detail);
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "fcntl", errno, detail + ", O_NONBLOCK");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
    return ThrowErrno(env, "socketpair", errno, "AF_UNIX, SOCK_STREAM");
  }
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Napi::Number::New(env, sv[0]));
  pair.Set(1u, Napi::Number::New(env, sv[1]));
  return pair;
}

// recvMsg(fd, buf: Uint8Array, fds: Int32Array) => bytes | 0 (EOF) | -1 (EAGAIN)
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  int fd = a.Fd(0);
  Napi::Uint8Array buf = a.Bytes(1);
  Napi::Int32Array fds = a.Int32s(2);
  if (!a.Ok()) return Napi::Value();

  // Room for as many fds as the kernel passes in one message (SCM_MAX_FD), so surplus
  // fds reach us and are closed here instead of cutting the message with MSG_CTRUNC.
  constexpr size_t kScmMaxFd = 253;
  alignas(cmsghdr) char control[CMSG_SPACE(kScmMaxFd * sizeof(int))];
  iovec iov{buf.Data(), buf.ByteLength()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  std::string detail = "fd=" + Str(fd) + ", len=" + Str(buf.ByteLength());
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    return ThrowErrno(env, "recvmsg", errno, detail);
  }

  int32_t* out = fds.Data();
  const size_t capacity = fds.ElementLength();
  for (size_t i = 0; i < capacity; i++) out[i] = -1;
  const bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  size_t stored = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count; k++) {
      int received;
      memcpy(&received, CMSG_DATA(c) + k * sizeof(int), sizeof received);
      // Every received fd is ours to close: keep what the caller has room for.
      if (!truncated && stored < capacity) {
        out[stored++] = received;
      } else {
        close(received);
      }
    }
  }
  if (truncated) {
    // Some fds were dropped by the kernel: the message cannot be trusted. EMSGSIZE is the
    // closest errno for "control data did not fit".
    return ThrowErrno(env, "recvmsg", EMSGSIZE, detail + ", MSG_CTRUNC (fds lost)");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

// sendMsg(fd, buf: Uint8Array, fds?: number[]) => bytes | -1 (EAGAIN)
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr uint32_t kMaxFds = 8;
  Args a(info);
  int fd = a.Fd(0);
  Napi::Uint8Array buf = a.Bytes(1);
  if (!a.Ok()) return Napi::Value();
  int fdv[kMaxFds];
  uint32_t nfds = 0;
  if (info[2].IsArray()) {
    Napi::Array list = info[2].As<Napi::Array>();
    nfds = list.Length();
    for (uint32_t i = 0; i < nfds && i < kMaxFds; i++) {
      Napi::Value v = list.Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= INT_MAX && d == std::trunc(d))) nfds = UINT32_MAX;
      fdv[i] = static_cast<int>(d);
    }
  } else if (!info[2].IsUndefined()) {
    nfds = UINT32_MAX;
  }
  if (nfds > kMaxFds) {
    Napi::TypeError::New(env, "native addon: invalid fds for sendMsg").ThrowAsJavaScriptException();
    return Napi::Value();
  }

  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fdv)] = {};
  iovec iov{buf.Data(), buf.ByteLength()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fdv, nfds * sizeof(int));
  }
  ssize_t n;
  // MSG_NOSIGNAL: a vanished peer must be an EPIPE error, not a SIGPIPE for the daemon.
  do n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    std::string fdList;
    for (uint32_t i = 0; i < nfds; i++) fdList += (i ? "," : "") + Str(fdv[i]);
    return ThrowErrno(env, "sendmsg", errno,
                      "fd=" + Str(fd) + ", len=" + Str(buf.ByteLength()) + ", fds=[" + fdList + "]");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Args a(info);
  int fd = a.Fd(0);
  if (!a.Ok()) return Napi::Value();
  // Linux releases the fd even when close() reports EINTR. Retrying could close an fd
  // that another thread has been given in the meantime, so EINTR counts as success.
  if (close(fd) < 0 && errno != EINTR) return ThrowErrno(info.Env(), "close", errno, "fd=" + Str(fd));
  return info.Env().Undefined();
}

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
  std::string detail = "fd=" + Str(fd) + ", value=" + std::to_string(value);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
    return ThrowErrno(info.Env(), "write", errno, detail);
  }
  // eventfd and unix stream sockets take 8 bytes whole or not at all; anything else
  // would desynchronise the peer.
  if (n != sizeof value) return ThrowErrno(info.Env(), "write", EIO, detail + ", short write " + Str(n));
  return Napi::Boolean::New(info.Env(), true);
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

// ---- shared memory -----------------------------------------------------------------------

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  std::string name = a.String(0);
  int64_t size = a.Int(1);
  if (!a.Ok()) return Napi::Value();
  std::string detail = "name=" + name + ", size=" + Str(size);
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ThrowErrno(env, "memfd_create", errno, detail);
  if (ftruncate(fd, size) < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "ftruncate", errno, detail);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  int fd = a.Fd(0);
  int64_t offset = a.Int(1);
  size_t length = static_cast<size_t>(a.Int(2));
  bool writable = a.Bool(3);
  if (!a.Ok()) return Napi::Value();
  if (length == 0) return ThrowErrno(env, "mmap", EINVAL, "length=0");

  void* p = mmap(nullptr, length, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, offset);
  if (p == MAP_FAILED) {
    return ThrowErrno(env, "mmap", errno,
                      "fd=" + Str(fd) + ", offset=" + Str(offset) + ", length=" + Str(length) +
                          (writable ? ", PROT_READ|PROT_WRITE" : ", PROT_READ"));
  }
  // No finalizer: guest memory is unmapped when the memory table changes (munmap), not
  // whenever the garbage collector gets round to it.
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, p, length);
  if (env.IsExceptionPending()) {
    munmap(p, length);
    return Napi::Value();
  }
  env.GetInstanceData<AddonData>()->mappings[p] = length;
  return ab;
}

// munmap(ab) => true, or false if ab is not a live mapping made by mmap (the wrapper throws).
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) return Napi::Boolean::New(env, false);
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  auto& mappings = env.GetInstanceData<AddonData>()->mappings;
  // A detached buffer reports a null pointer, so a second munmap finds nothing.
  auto it = mappings.find(ab.Data());
  if (ab.Data() == nullptr || it == mappings.end()) return Napi::Boolean::New(env, false);
  void* p = it->first;
  size_t length = it->second;
  // Detach before unmapping: every view then reads as length 0, and no JavaScript can
  // reach the memory once it is gone.
  ab.Detach();
  if (env.IsExceptionPending()) return Napi::Value();
  mappings.erase(it);
  if (munmap(p, length) < 0) return ThrowErrno(env, "munmap", errno, "length=" + Str(length));
  return Napi::Boolean::New(env, true);
}

Napi::Value MemoryBarrier(const Napi::CallbackInfo& info) {
  // Orders our ring index accesses against the guest's CPUs (see ARCHITECTURE.md).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return info.Env().Undefined();
}

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// ---- files -------------------------------------------------------------------------------

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
};

Napi::Value Fallocate(const Napi::CallbackInfo& info) {
  Args a(info);
  FallocateCall call = FallocateCall::From(a);
  if (!a.Ok()) return Napi::Value();
  if (int err = call.Run()) return ThrowErrno(info.Env(), "fallocate", err, call.Detail());
  return info.Env().Undefined();
}

// ---- zoned block device ioctls -----------------------------------------------------------

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
};

// blkZoneMgmt(fd, request, sector, nrSectors): open/close/finish/reset a range of zones.
Napi::Value BlkZoneMgmt(const Napi::CallbackInfo& info) {
  Args a(info);
  ZoneMgmtCall call;
  if (!ZoneMgmtCall::From(info, a, &call)) return Napi::Value();
  if (int err = call.Run()) return ThrowErrno(info.Env(), "ioctl", err, call.Detail());
  return info.Env().Undefined();
}

// Zone reports and zone management on a real drive can take from microseconds (null_blk)
// to seconds (an SMR disk resetting every zone). These variants run the same calls on the
// libuv thread pool so the daemon's loop keeps serving its queues meanwhile; the callback
// gets (error, result) on the loop thread.
class ZoneIoctlWorker : public Napi::AsyncWorker {
 public:
  ZoneIoctlWorker(const Napi::Function& callback, const char* name)
      : Napi::AsyncWorker(callback, name) {}

 protected:
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_ != 0) {
      Callback().Call({ErrnoError(env, syscall_, err_, detail_).Value(), env.Undefined()});
    } else {
      Callback().Call({env.Null(), Result(env)});
    }
  }
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  int err_ = 0;                  // errno of the failed call, 0 on success
  std::string detail_;           // the call's arguments, for the error message
  const char* syscall_ = "ioctl";
};

class ReportZonesWorker : public ZoneIoctlWorker {
 public:
  ReportZonesWorker(const Napi::Function& callback, const ReportZonesCall& call, Napi::Uint8Array buf)
      : ZoneIoctlWorker(callback, "blkReportZonesAsync"),
        call_(call),
        // Holds the buffer (and so its memory) until the ioctl is done with it.
        keep_(Napi::Persistent(buf)) {}

  void Execute() override {
    err_ = call_.Run();
    if (err_ != 0) detail_ = call_.Detail();
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, call_.zones); }

 private:
  ReportZonesCall call_;
  Napi::Reference<Napi::Uint8Array> keep_;
};

class ZoneMgmtWorker : public ZoneIoctlWorker {
 public:
  ZoneMgmtWorker(const Napi::Function& callback, const ZoneMgmtCall& call)
      : ZoneIoctlWorker(callback, "blkZoneMgmtAsync"), call_(call) {}

  void Execute() override {
    err_ = call_.Run();
    if (err_ != 0) detail_ = call_.Detail();
  }

 private:
  ZoneMgmtCall call_;
};

// Punching a hole into a file on tmpfs frees every page of the range, ~40 ms for 256 MiB:
// off the loop, so a zone reset does not stall the other zones' requests.
class FallocateWorker : public ZoneIoctlWorker {
 public:
  FallocateWorker(const Napi::Function& callback, const FallocateCall& call)
      : ZoneIoctlWorker(callback, "fallocateAsync"), call_(call) {
    syscall_ = "fallocate";
  }

  void Execute() override {
    err_ = call_.Run();
    if (err_ != 0) detail_ = call_.Detail();
  }

 private:
  FallocateCall call_;
};

// fallocateAsync(fd, mode, offset, length, callback(err)): fallocate on the libuv thread pool.
Napi::Value FallocateAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  FallocateCall call = FallocateCall::From(a);
  a.Check(4, info[4].IsFunction());
  if (!a.Ok()) return Napi::Value();
  (new FallocateWorker(info[4].As<Napi::Function>(), call))->Queue();
  return info.Env().Undefined();
}

// blkReportZonesAsync(fd, sector, buf, callback(err, zones)): BlkReportZones off the loop.
Napi::Value BlkReportZonesAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  ReportZonesCall call;
  a.Check(3, info[3].IsFunction());
  if (!ReportZonesCall::From(info, a, &call)) return Napi::Value();
  (new ReportZonesWorker(info[3].As<Napi::Function>(), call, info[2].As<Napi::Uint8Array>()))->Queue();
  return info.Env().Undefined();
}

// blkZoneMgmtAsync(fd, request, sector, nrSectors, callback(err)): BlkZoneMgmt off the loop.
Napi::Value BlkZoneMgmtAsync(const Napi::CallbackInfo& info) {
  Args a(info);
  ZoneMgmtCall call;
  a.Check(4, info[4].IsFunction());
  if (!ZoneMgmtCall::From(info, a, &call)) return Napi::Value();
  (new ZoneMgmtWorker(info[4].As<Napi::Function>(), call))->Queue();
  return info.Env().Undefined();
}

// pageOffsetOf(view) => the view's start address modulo the page size. O_DIRECT needs
// buffers aligned to the device's DMA alignment, and an ArrayBuffer's address is not
// visible from JavaScript.
Napi::Value PageOffsetOf(const Napi::CallbackInfo& info) {
  Args a(info);
  Napi::Uint8Array view = a.Bytes(0);
  if (!a.Ok()) return Napi::Value();
  // Data() already includes the view's byteOffset.
  uintptr_t address = reinterpret_cast<uintptr_t>(view.Data());
  uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  return Napi::Number::New(info.Env(), static_cast<double>(address & (page - 1)));
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

// ---- io_uring file I/O ------------------------------------------------------------------

// A small io_uring for buffered file reads and writes, driven from the JavaScript thread:
// queue() fills submission entries, submit() hands all of them to the kernel in one
// io_uring_enter, reap() copies completions out. Reads of cached data complete during the
// submit call itself (no thread hand-off, unlike the libuv thread pool); what the kernel
// finishes later (io-wq workers, or a buffered read retried from task work once its page is
// unlocked) is announced on an eventfd registered with IORING_REGISTER_EVENTFD, which the
// caller polls on the Node loop. Not IORING_REGISTER_EVENTFD_ASYNC: that one stays silent
// for completions posted from task work, and a read waiting on a locked page would then
// never be noticed. Raw system calls, no liburing: the UAPI header is all we need here.
//
// The caller owns tags (0 .. capacity-1), keeps every buffer alive and mapped until its
// completion is reaped, and never has more than capacity operations in flight, so the
// completion queue cannot overflow.
//
// The hot path is submitAndReap(): one io_uring_enter for a batch, then the completion queue
// read from shared memory, in one call from JavaScript. While the caller reaps inline it
// turns the eventfd off (IORING_CQ_EVENTFD_DISABLED), so the kernel does not signal, nor
// the caller clear, an eventfd for completions it collects anyway; it turns it on only while
// requests stay in flight after a batch.
class IoRing : public Napi::ObjectWrap<IoRing> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "IoRing",
                       {InstanceMethod<&IoRing::Queue>("queue"), InstanceMethod<&IoRing::Submit>("submit"),
                        InstanceMethod<&IoRing::Reap>("reap"), InstanceMethod<&IoRing::SubmitAndReap>("submitAndReap"),
                        InstanceMethod<&IoRing::ArmEventFd>("armEventFd"), InstanceMethod<&IoRing::JsClose>("close"),
                        InstanceAccessor<&IoRing::EventFd>("eventFd"),
                        InstanceAccessor<&IoRing::Capacity>("capacity")});
  }

  // new IoRing(entries): entries is a power of two (the wrapper checks).
  explicit IoRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoRing>(info) {
    Napi::Env env = info.Env();
    Args a(info);
    unsigned entries = static_cast<unsigned>(a.Int(0, 4096));
    if (!a.Ok()) return;
    io_uring_params p;
    memset(&p, 0, sizeof p);
    // One submitter (this thread) lets the kernel skip the ring's submission locking (6.0+);
    // older kernels refuse the flag with EINVAL and get a plain ring.
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER;
    p.cq_entries = entries;
    int fd = static_cast<int>(syscall(__NR_io_uring_setup, entries, &p));
    if (fd < 0 && errno == EINVAL) {
      memset(&p, 0, sizeof p);
      p.flags = IORING_SETUP_CQSIZE;
      p.cq_entries = entries;
      fd = static_cast<int>(syscall(__NR_io_uring_setup, entries, &p));
    }
    if (fd < 0) {
      ThrowErrno(env, "io_uring_setup", errno, "entries=" + Str(entries));
      return;
    }
    ring_fd_ = fd;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
      Close();
      ThrowErrno(env, "io_uring_setup", ENOSYS, "kernel lacks IORING_FEAT_SINGLE_MMAP");
      return;
    }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    ring_len_ = sq_len > cq_len ? sq_len : cq_len;
    ring_ = mmap(nullptr, ring_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (ring_ == MAP_FAILED) {
      ring_ = nullptr;
      int e = errno;
      Close();
      ThrowErrno(env, "mmap", e, "io_uring rings, length=" + Str(ring_len_));
      return;
    }
    sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
    void* sqes = mmap(nullptr, sqes_len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
      int e = errno;
      Close();
      ThrowErrno(env, "mmap", e, "io_uring sqes, length=" + Str(sqes_len_));
      return;
    }
    sqes_ = static_cast<io_uring_sqe*>(sqes);
    char* base = static_cast<char*>(ring_);
    sq_head_ = reinterpret_cast<unsigned*>(base + p.sq_off.head);
    sq_tail_ = reinterpret_cast<unsigned*>(base + p.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned*>(base + p.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(base + p.sq_off.array);
    cq_head_ = reinterpret_cast<unsigned*>(base + p.cq_off.head);
    cq_tail_ = reinterpret_cast<unsigned*>(base + p.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned*>(base + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(base + p.cq_off.cqes);
    // cq_off.flags is 0 on kernels before 5.8, which cannot turn the eventfd off.
    cq_flags_ = p.cq_off.flags != 0 ? reinterpret_cast<unsigned*>(base + p.cq_off.flags) : nullptr;
    sq_entries_ = p.sq_entries;
    capacity_ = p.cq_entries;
    local_tail_ = *sq_tail_;
    iovecs_.resize(capacity_);
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) {
      int e = errno;
      Close();
      ThrowErrno(env, "eventfd", e, "io_uring completion eventfd");
      return;
    }
    if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_EVENTFD, &efd_, 1) < 0) {
      int e = errno;
      Close();
      ThrowErrno(env, "io_uring_register", e, "IORING_REGISTER_EVENTFD");
      return;
    }
  }

  ~IoRing() override { Close(); }

 private:
  // queue(write: boolean, fd, views: Uint8Array | Uint8Array[], offset, tag) => false when the
  // submission queue is full (submit first).
  Napi::Value Queue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info);
    bool write = a.Bool(0);
    int fd = a.Fd(1);
    int64_t offset = a.Int(3);
    uint32_t tag = static_cast<uint32_t>(a.Int(4, capacity_ == 0 ? 0 : capacity_ - 1));
    if (!a.Ok()) return Napi::Value();
    if (ring_fd_ < 0) return ThrowErrno(env, "io_uring", EBADF, "ring closed");
    if (local_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE) >= sq_entries_) return Napi::Boolean::New(env, false);
    io_uring_sqe* sqe = &sqes_[local_tail_ & sq_mask_];
    memset(sqe, 0, sizeof *sqe);
    sqe->fd = fd;
    sqe->off = static_cast<uint64_t>(offset);
    sqe->user_data = tag;
    Napi::Value v = info[2];
    if (v.IsTypedArray()) {
      Napi::Uint8Array b = v.As<Napi::Uint8Array>();
      sqe->opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
      sqe->addr = reinterpret_cast<uint64_t>(b.Data());
      sqe->len = static_cast<uint32_t>(b.ByteLength());
    } else if (v.IsArray()) {
      Napi::Array list = v.As<Napi::Array>();
      uint32_t n = list.Length();
      std::vector<iovec>& iov = iovecs_[tag];
      iov.resize(n);  // keeps its capacity: no allocation once warmed up
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value e = list.Get(i);
        if (!e.IsTypedArray()) {
          Napi::TypeError::New(env, "native addon: IoRing.queue views must be Uint8Arrays").ThrowAsJavaScriptException();
          return Napi::Value();
        }
        Napi::Uint8Array b = e.As<Napi::Uint8Array>();
        iov[i].iov_base = b.Data();
        iov[i].iov_len = b.ByteLength();
      }
      sqe->opcode = write ? IORING_OP_WRITEV : IORING_OP_READV;
      sqe->addr = reinterpret_cast<uint64_t>(iov.data());
      sqe->len = n;
    } else {
      Napi::TypeError::New(env, "native addon: IoRing.queue needs a Uint8Array or an array of them").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    sq_array_[local_tail_ & sq_mask_] = local_tail_ & sq_mask_;
    local_tail_++;
    return Napi::Boolean::New(env, true);
  }

  // Hands every queued entry to the kernel in one io_uring_enter: entries it took, or -errno.
  long SubmitQueued() {
    __atomic_store_n(sq_tail_, local_tail_, __ATOMIC_RELEASE);
    unsigned pending = local_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
    if (pending == 0) return 0;
    long r;
    do r = syscall(__NR_io_uring_enter, ring_fd_, pending, 0, 0, nullptr, 0);
    while (r < 0 && errno == EINTR);
    // Out of kernel resources for now: the entries stay queued for the next submit.
    if (r < 0) return errno == EAGAIN || errno == EBUSY ? 0 : -errno;
    return r;
  }

  // Copies completions to out (tag, result) pairs, at most out.length / 2; returns the pairs.
  size_t ReapInto(double* out, size_t room) {
    unsigned head = *cq_head_;
    unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
    size_t n = 0;
    while (head != tail && n < room) {
      const io_uring_cqe& c = cqes_[head & cq_mask_];
      out[2 * n] = static_cast<double>(c.user_data);
      out[2 * n + 1] = static_cast<double>(c.res);
      head++;
      n++;
    }
    __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
    return n;
  }

  // The Float64Array argument of reap/submitAndReap, or null (a TypeError is pending).
  static double* OutArg(const Napi::CallbackInfo& info, const char* method, size_t* room) {
    Napi::Value v = info[0];
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      Napi::TypeError::New(info.Env(), std::string("native addon: IoRing.") + method + " needs a Float64Array")
          .ThrowAsJavaScriptException();
      return nullptr;
    }
    Napi::Float64Array out = v.As<Napi::Float64Array>();
    *room = out.ElementLength() / 2;
    return out.Data();
  }

  // submit() => entries the kernel took. Cached reads are complete when it returns.
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (ring_fd_ < 0) return ThrowErrno(env, "io_uring", EBADF, "ring closed");
    long r = SubmitQueued();
    if (r < 0) return ThrowErrno(env, "io_uring_enter", static_cast<int>(-r), "to_submit=" + Str(local_tail_ - *sq_head_));
    return Napi::Number::New(env, static_cast<double>(r));
  }

  // reap(out: Float64Array) => completions copied: out[2i] = tag, out[2i+1] = result
  // (bytes, or -errno).
  Napi::Value Reap(const Napi::CallbackInfo& info) {
    size_t room = 0;
    double* out = OutArg(info, "reap", &room);
    if (out == nullptr) return Napi::Value();
    if (ring_fd_ < 0) return Napi::Number::New(info.Env(), 0);
    return Napi::Number::New(info.Env(), static_cast<double>(ReapInto(out, room)));
  }

  // Completion signals on the eventfd on or off; true when completions are waiting.
  bool SetEventFd(bool on) {
    if (cq_flags_ != nullptr) {
      unsigned f = __atomic_load_n(cq_flags_, __ATOMIC_RELAXED);
      f = on ? (f & ~IORING_CQ_EVENTFD_DISABLED) : (f | IORING_CQ_EVENTFD_DISABLED);
      __atomic_store_n(cq_flags_, f, __ATOMIC_RELEASE);
    }
    // The flag store before the tail load: a completion the kernel posts after we look signals.
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE) != *cq_head_;
  }

  // submitAndReap(out: Float64Array) => with eventfd signals off, submit(), then reap(out).
  // The caller turns signals on (armEventFd) if it leaves requests in flight.
  Napi::Value SubmitAndReap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t room = 0;
    double* out = OutArg(info, "submitAndReap", &room);
    if (out == nullptr) return Napi::Value();
    if (ring_fd_ < 0) return ThrowErrno(env, "io_uring", EBADF, "ring closed");
    SetEventFd(false);
    long r = SubmitQueued();
    if (r < 0) return ThrowErrno(env, "io_uring_enter", static_cast<int>(-r), "to_submit=" + Str(local_tail_ - *sq_head_));
    return Napi::Number::New(env, static_cast<double>(ReapInto(out, room)));
  }

  // armEventFd(on) => true when completions are waiting. Turning the eventfd on, a completion
  // posted while it was off has signalled nothing: the caller must reap when this says so.
  // Without kernel support (before 5.8) the eventfd stays on and this reports the queue.
  Napi::Value ArmEventFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info);
    bool on = a.Bool(0);
    if (!a.Ok()) return Napi::Value();
    if (ring_fd_ < 0) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, SetEventFd(on));
  }

  Napi::Value EventFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), efd_); }
  Napi::Value Capacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), capacity_); }

  // close(): the caller has reaped everything it waits for. Idempotent.
  Napi::Value JsClose(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  void Close() {
    if (sqes_ != nullptr) munmap(sqes_, sqes_len_);
    if (ring_ != nullptr) munmap(ring_, ring_len_);
    sqes_ = nullptr;
    ring_ = nullptr;
    // Closing the ring fd cancels and waits for whatever the kernel still holds.
    if (ring_fd_ >= 0) close(ring_fd_);
    if (efd_ >= 0) close(efd_);
    ring_fd_ = efd_ = -1;
  }

  int ring_fd_ = -1;
  int efd_ = -1;
  void* ring_ = nullptr;
  size_t ring_len_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_len_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned* sq_array_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned sq_entries_ = 0;
  unsigned local_tail_ = 0;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  unsigned* cq_flags_ = nullptr;
  unsigned capacity_ = 0;
  std::vector<std::vector<iovec>> iovecs_;
};

// ---- module ------------------------------------------------------------------------------

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  struct {
    const char* name;
    Napi::Function::Callback fn;
  } functions[] = {
      {"setErrorFactory", SetErrorFactory}, {"listenUnix", ListenUnix},
      {"acceptUnix", AcceptUnix},           {"connectUnix", ConnectUnix},
      {"socketpair", Socketpair},           {"recvMsg", RecvMsg},
      {"sendMsg", SendMsg},                 {"closeFd", CloseFd},
      {"eventfd", Eventfd},                 {"writeCounter", WriteCounter},
      {"readCounter", ReadCounter},         {"memfdCreate", MemfdCreate},
      {"mmap", Mmap},                       {"munmap", Munmap},
      {"memoryBarrier", MemoryBarrier},     {"pageSize", PageSize},
      {"flock", Flock},                     {"fallocate", Fallocate}, {"fallocateAsync", FallocateAsync},
      {"blkGetZoneSize", BlkGetZoneSize},   {"blkGetNrZones", BlkGetNrZones},
      {"blkReportZones", BlkReportZones},   {"blkZoneMgmt", BlkZoneMgmt},
      {"blkReportZonesAsync", BlkReportZonesAsync},
      {"blkZoneMgmtAsync", BlkZoneMgmtAsync},
      {"pageOffsetOf", PageOffsetOf},
      {"pollFds", PollFds},
  };
  for (const auto& f : functions) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  exports.Set("FdPoller", FdPoller::Define(env));
  exports.Set("IoRing", IoRing::Define(env));
  exports.Set("POLL_READABLE", Napi::Number::New(env, UV_READABLE));
  exports.Set("POLL_WRITABLE", Napi::Number::New(env, UV_WRITABLE));

  Napi::Object zoneOps = Napi::Object::New(env);
  for (const ZoneOp& op : kZoneOps) zoneOps.Set(op.name, Napi::Number::New(env, op.request));
  exports.Set("BLK_ZONE_OP", zoneOps);
  exports.Set("FALLOC_FL_KEEP_SIZE", Napi::Number::New(env, FALLOC_FL_KEEP_SIZE));
  exports.Set("FALLOC_FL_PUNCH_HOLE", Napi::Number::New(env, FALLOC_FL_PUNCH_HOLE));
  return exports;
}

}  // namespace

NODE_API_MODULE(vhost_user_zbd_native, Init)
