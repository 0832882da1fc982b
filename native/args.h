// Typed access to the arguments of a call from JavaScript.
//
// src/native/index.ts has already checked types and ranges; Args re-checks them only as a
// last line of defence against a wrapper bug: a wrong value must throw, never reach a
// system call as fd 0 or a null buffer.

#ifndef VHOST_USER_ZBD_NATIVE_ARGS_H_
#define VHOST_USER_ZBD_NATIVE_ARGS_H_

#include <napi.h>

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <sys/uio.h>

#include "addon.h"

namespace zbd {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

// Each accessor returns a harmless value when the argument is wrong and remembers the
// failure; Ok() then throws once.
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

// The iovec list of a Uint8Array or an array of them (the views of one read or write), into
// `iov` (reused: its capacity stays). False with a TypeError pending for anything else; at
// most `max` entries are taken (the caller's transfer is then short, and asked again).
inline bool IovecsFromViews(Napi::Env env, Napi::Value v, std::vector<iovec>& iov, const char* who, size_t max = SIZE_MAX) {
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    Napi::Uint8Array b = v.As<Napi::Uint8Array>();
    iov.resize(1);
    iov[0].iov_base = b.Data();
    iov[0].iov_len = b.ByteLength();
    return true;
  }
  if (!v.IsArray()) {
    Napi::TypeError::New(env, std::string("native addon: ") + who + " needs a Uint8Array or an array of them").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Array list = v.As<Napi::Array>();
  size_t n = list.Length();
  if (n > max) n = max;
  iov.resize(n);
  for (size_t i = 0; i < n; i++) {
    Napi::Value e = list.Get(static_cast<uint32_t>(i));
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      Napi::TypeError::New(env, std::string("native addon: ") + who + " views must be Uint8Arrays").ThrowAsJavaScriptException();
      return false;
    }
    Napi::Uint8Array b = e.As<Napi::Uint8Array>();
    iov[i].iov_base = b.Data();
    iov[i].iov_len = b.ByteLength();
  }
  return true;
}

}  // namespace zbd

#endif  // VHOST_USER_ZBD_NATIVE_ARGS_H_
