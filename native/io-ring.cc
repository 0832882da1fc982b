// io_uring for the file backends' reads and writes (IoRing).

#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "args.h"

namespace zbd {
namespace {

// A small io_uring for buffered file reads and writes, driven from the JavaScript thread:
// queueBatch() fills submission entries, submit() hands all of them to the kernel in one
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
                       {InstanceMethod<&IoRing::QueueBatch>("queueBatch"),
                        InstanceMethod<&IoRing::Submit>("submit"),
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
  // queueBatch(n, meta: Float64Array, views: Array) => entries placed, from the first; fewer
  // than n when the submission queue filled up (submit, then place the rest). Entry i is
  // meta[4i..4i+3] = (write ? 1 : 0, fd, offset, tag) with views[i], a Uint8Array or an
  // array of them. One call
  // for a whole batch: the per-call cost of the addon boundary is paid once, not per entry.
  Napi::Value QueueBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info);
    uint32_t n = static_cast<uint32_t>(a.Int(0, 0xffffffff));
    Napi::Float64Array meta = a.Typed<Napi::Float64Array>(1, napi_float64_array);
    a.Check(2, info[2].IsArray());
    if (!a.Ok()) return Napi::Value();
    if (ring_fd_ < 0) return ThrowErrno(env, "io_uring", EBADF, "ring closed");
    Napi::Array views = info[2].As<Napi::Array>();
    if (static_cast<size_t>(n) * 4 > meta.ElementLength() || n > views.Length()) {
      Napi::TypeError::New(env, "native addon: IoRing.queueBatch count " + Str(n) + " exceeds its arrays").ThrowAsJavaScriptException();
      return Napi::Value();
    }
    const double* m = meta.Data();
    uint32_t i = 0;
    for (; i < n && !SqFull(); i++) {
      double w = m[4 * i], fd = m[4 * i + 1], off = m[4 * i + 2], tag = m[4 * i + 3];
      // The wrapper built these; a wrong one must still never reach the kernel.
      if (!(fd >= 0 && fd <= INT_MAX && fd == std::trunc(fd) && off >= 0 && off <= kMaxSafeInteger && off == std::trunc(off) &&
            tag >= 0 && tag < capacity_ && tag == std::trunc(tag))) {
        Napi::TypeError::New(env, "native addon: IoRing.queueBatch entry " + Str(i) + " is invalid").ThrowAsJavaScriptException();
        return Napi::Value();
      }
      if (!Place(env, w != 0, static_cast<int>(fd), views.Get(i), static_cast<int64_t>(off), static_cast<uint32_t>(tag))) {
        return Napi::Value();
      }
    }
    return Napi::Number::New(env, i);
  }

  bool SqFull() const { return local_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE) >= sq_entries_; }

  // Fills the next submission entry (the queue has room); false with a TypeError pending
  // when v is not a Uint8Array or an array of them (nothing is queued then).
  bool Place(Napi::Env env, bool write, int fd, Napi::Value v, int64_t offset, uint32_t tag) {
    io_uring_sqe* sqe = &sqes_[local_tail_ & sq_mask_];
    memset(sqe, 0, sizeof *sqe);
    sqe->fd = fd;
    sqe->off = static_cast<uint64_t>(offset);
    sqe->user_data = tag;
    std::vector<iovec>& iov = iovecs_[tag];
    if (!IovecsFromViews(env, v, iov, "IoRing")) return false;
    if (iov.size() == 1) {
      // One view: the plain opcode, no iovec for the kernel to copy in.
      sqe->opcode = write ? IORING_OP_WRITE : IORING_OP_READ;
      sqe->addr = reinterpret_cast<uint64_t>(iov[0].iov_base);
      sqe->len = static_cast<uint32_t>(iov[0].iov_len);
    } else {
      sqe->opcode = write ? IORING_OP_WRITEV : IORING_OP_READV;
      sqe->addr = reinterpret_cast<uint64_t>(iov.data());
      sqe->len = static_cast<uint32_t>(iov.size());
    }
    sq_array_[local_tail_ & sq_mask_] = local_tail_ & sq_mask_;
    local_tail_++;
    return true;
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

}  // namespace

void ExportIoRing(Napi::Env env, Napi::Object exports) { exports.Set("IoRing", IoRing::Define(env)); }

}  // namespace zbd
