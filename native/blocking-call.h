// One blocking system call run on the libuv thread pool instead of the loop thread.
//
// A zone reset on a real drive can take from microseconds (null_blk) to seconds (an SMR
// disk resetting every zone), and punching a hole into a file on tmpfs frees every page of
// the range (~40 ms for 256 MiB). Run here, they leave the daemon's loop free to serve its
// queues meanwhile; the callback gets (error, result) on the loop thread.

#ifndef VHOST_USER_ZBD_NATIVE_BLOCKING_CALL_H_
#define VHOST_USER_ZBD_NATIVE_BLOCKING_CALL_H_

#include <napi.h>

#include <string>

#include "addon.h"

namespace zbd {

// Call is a value type describing one system call:
//   int Run()                           makes the call (on a pool thread): 0, or the errno
//   std::string Detail() const          its arguments, for the error message
//   Napi::Value Result(Napi::Env) const the callback's result after success
template <typename Call>
class BlockingCallWorker : public Napi::AsyncWorker {
 public:
  // `name` is the async resource name (the JavaScript function), `syscall` the error's.
  BlockingCallWorker(const Napi::Function& callback, const char* name, const char* syscall, const Call& call)
      : Napi::AsyncWorker(callback, name), syscall_(syscall), call_(call) {}

  // Holds an object (and so its memory, e.g. a buffer the call fills) until the call is done.
  void Keep(Napi::Object object) { keep_ = Napi::Persistent(object); }

 protected:
  void Execute() override {
    err_ = call_.Run();
    if (err_ != 0) detail_ = call_.Detail();
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_ != 0) {
      Callback().Call({ErrnoError(env, syscall_, err_, detail_).Value(), env.Undefined()});
    } else {
      Callback().Call({env.Null(), call_.Result(env)});
    }
  }

 private:
  const char* syscall_;
  Call call_;
  Napi::ObjectReference keep_;
  int err_ = 0;          // errno of the failed call, 0 on success
  std::string detail_;   // the call's arguments, set only when it failed
};

}  // namespace zbd

#endif  // VHOST_USER_ZBD_NATIVE_BLOCKING_CALL_H_
