// Unix sockets that carry fds: the vhost-user control socket (listen, accept, connect)
// and its messages with SCM_RIGHTS (recvmsg, sendmsg); closing fds.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "addon.h"
#include "args.h"

namespace zbd {
namespace {

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
  auto detail = [&] { return "fd=" + Str(fd) + ", path=" + path; };
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "bind", errno, detail());
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
    return ThrowErrno(env, failed, err, detail() + ", backlog=" + Str(backlog));
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
  auto detail = [&] { return "fd=" + Str(fd) + ", path=" + path; };
  int r;
  do r = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "connect", errno, detail());
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "fcntl", errno, detail() + ", O_NONBLOCK");
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
  auto detail = [&] { return "fd=" + Str(fd) + ", len=" + Str(buf.ByteLength()); };
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Napi::Number::New(env, -1);
    return ThrowErrno(env, "recvmsg", errno, detail());
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
    return ThrowErrno(env, "recvmsg", EMSGSIZE, detail() + ", MSG_CTRUNC (fds lost)");
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

}  // namespace

void ExportSocket(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"listenUnix", ListenUnix},
                   {"acceptUnix", AcceptUnix},
                   {"connectUnix", ConnectUnix},
                   {"socketpair", Socketpair},
                   {"recvMsg", RecvMsg},
                   {"sendMsg", SendMsg},
                   {"closeFd", CloseFd}});
}

}  // namespace zbd
