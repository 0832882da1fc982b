// Shared by every source file of the addon: the state kept per Node environment, errors
// for failed system calls, and how each concern file adds its functions to the exports.
//
// src/native/index.ts is the only module that loads this addon. It validates every
// argument and gives each function its type; the .cc files make the system calls. A failed
// system call is turned into an error by a factory the wrapper installs (setErrorFactory),
// so it reaches JavaScript as a ZbdError carrying errno, syscall and the argument values.
// Detail strings for those errors are built on the error path only: several of these
// functions run once per guest request.

#ifndef VHOST_USER_ZBD_NATIVE_ADDON_H_
#define VHOST_USER_ZBD_NATIVE_ADDON_H_

#include <napi.h>

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <unordered_map>

namespace zbd {

// State per Node environment (main thread and each worker get their own).
struct AddonData {
  Napi::FunctionReference errorFactory;  // (syscall, errno, detail) => Error
  // Live mappings made by mmap (memory.cc), keyed by address, so munmap accepts only
  // those and unmaps each exactly once.
  std::unordered_map<void*, size_t> mappings;
};

// The error for a failed system call: the wrapper's factory makes it, or, without the
// wrapper, a plain Error with the same facts. `detail` lists the call's arguments.
Napi::Error ErrnoError(Napi::Env env, const char* syscall, int err, const std::string& detail);

// Throws ErrnoError; returns the empty value a function returns after throwing.
Napi::Value ThrowErrno(Napi::Env env, const char* syscall, int err, const std::string& detail);

inline std::string Str(int64_t v) { return std::to_string(v); }

// Close an fd on an error path without losing the errno being reported.
inline void CloseKeepErrno(int fd) {
  int saved = errno;
  close(fd);
  errno = saved;
}

struct NamedFunction {
  const char* name;
  Napi::Function::Callback fn;
};

inline void ExportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<NamedFunction> functions) {
  for (const NamedFunction& f : functions) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

// Each concern file adds its functions, classes and constants to the module's exports.
void ExportSocket(Napi::Env env, Napi::Object exports);    // socket.cc: unix sockets, fd passing
void ExportMemory(Napi::Env env, Napi::Object exports);    // memory.cc: memfd, mmap, barriers
void ExportPoll(Napi::Env env, Napi::Object exports);      // poll.cc: eventfd counters, fd polling
void ExportFile(Napi::Env env, Napi::Object exports);      // file.cc: flock, fallocate
void ExportZoneIoctl(Napi::Env env, Napi::Object exports); // zone-ioctl.cc: zoned block device ioctls
void ExportIoRing(Napi::Env env, Napi::Object exports);    // io-ring.cc: io_uring file I/O

}  // namespace zbd

#endif  // VHOST_USER_ZBD_NATIVE_ADDON_H_
