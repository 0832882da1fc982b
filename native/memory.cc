// Memory shared with the guest and its driver: memfd regions, mappings of the fds the
// front-end sends, the barrier that orders ring accesses, page size and buffer alignment.

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "addon.h"
#include "args.h"

namespace zbd {
namespace {

Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info);
  std::string name = a.String(0);
  int64_t size = a.Int(1);
  if (!a.Ok()) return Napi::Value();
  auto detail = [&] { return "name=" + name + ", size=" + Str(size); };
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ThrowErrno(env, "memfd_create", errno, detail());
  if (ftruncate(fd, size) < 0) {
    CloseKeepErrno(fd);
    return ThrowErrno(env, "ftruncate", errno, detail());
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

Napi::Value PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
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

}  // namespace

void ExportMemory(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {{"memfdCreate", MemfdCreate},
                   {"mmap", Mmap},
                   {"munmap", Munmap},
                   {"pageSize", PageSize},
                   {"pageOffsetOf", PageOffsetOf}});
}

}  // namespace zbd
