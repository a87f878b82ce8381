// What the graph-safe optimizers' ops share on the host and in their kernels: the argument checks
// (defined beside each op's schema in graphsafe_adam.cpp and graphsafe_sgd.cpp, called by its CPU
// and CUDA kernels) and how a kernel reads a one-element tensor (a hyperparameter, grad_scale,
// found_inf) from memory: as double, whatever its floating dtype.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <optional>

#include "host_device.h"

// Runs __VA_ARGS__ with NAME a constexpr bool equal to cond: a runtime flag made a template argument
// (the CPU kernels' loops are compiled once per combination of their flags).
#define FUSEDSCHED_BOOL(cond, NAME, ...) \
  if (cond) {                            \
    constexpr bool NAME = true;          \
    __VA_ARGS__                          \
  } else {                               \
    constexpr bool NAME = false;         \
    __VA_ARGS__                          \
  }

namespace fusedsched {
namespace graphsafe {

// The dtype of a one-element tensor a kernel reads.
enum ScalarCode : uint8_t { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

FUSEDSCHED_HOST_DEVICE double load_scalar(const void* ptr, uint8_t code) {
  switch (code) {
    case kFloat64:
      return *static_cast<const double*>(ptr);
    case kFloat16:
      return static_cast<float>(*static_cast<const c10::Half*>(ptr));
    case kBFloat16:
      return static_cast<float>(*static_cast<const c10::BFloat16*>(ptr));
    default:
      return *static_cast<const float*>(ptr);
  }
}

// The code of a floating one-element tensor (checked beforehand by the checks below).
inline uint8_t scalar_code(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kDouble:
      return kFloat64;
    case at::kHalf:
      return kFloat16;
    case at::kBFloat16:
      return kBFloat16;
    default:
      return kFloat32;
  }
}

// The value of a one-element CPU tensor, as a kernel reads it.
inline double host_value(const at::Tensor& t) {
  return load_scalar(t.const_data_ptr(), scalar_code(t));
}

// fusedsched::graphsafe_adam_'s arguments (see graphsafe_adam.cpp), checked before anything changes;
// every message names the argument and what it got.
void check_adam_args(
    at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
    at::TensorList max_exp_avg_sqs, at::TensorList steps, at::TensorList lr, at::TensorList beta1,
    at::TensorList beta2, at::TensorList weight_decay, at::TensorList eps, at::IntArrayRef group, bool amsgrad,
    const std::optional<at::Tensor>& grad_scale, const std::optional<at::Tensor>& found_inf);

// fusedsched::graphsafe_sgd_'s arguments (see graphsafe_sgd.cpp).
void check_sgd_args(
    at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers, at::TensorList momentum_started,
    at::TensorList lr, at::TensorList momentum, at::TensorList dampening, at::TensorList weight_decay,
    at::IntArrayRef group, const std::optional<at::Tensor>& grad_scale, const std::optional<at::Tensor>& found_inf);

}  // namespace graphsafe
}  // namespace fusedsched
