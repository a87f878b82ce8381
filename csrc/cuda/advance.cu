// fusedsched::advance_native_ and its overload .clock on CUDA (the schemas are declared in ../advance.cpp).
//
// One block strides over the groups: every thread reads the counter first, evaluates its groups,
// and after __syncthreads() thread 0 writes the new counter back (and a GradScaler's scale into
// previous_scale), so no thread can read a counter or a previous scale that was already written. A thread owns its groups' plateau columns: it updates one (when the
// step advances with a metric and the group's active segment is a PLATEAU) and then reads it, so
// the update needs no synchronization. Launched on the current stream with every per-step value read from
// device memory, no allocation and no host sync, so the launch can be captured in a CUDA graph
// and each replay advances the schedule.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream() is this c10 one; ATen/cuda would pull in cuSPARSE headers
#include <torch/library.h>

#include "../schedule_math.h"

namespace fusedsched {

void check_advance_args(
    const at::Tensor& step,
    const at::Tensor& table,
    const at::Tensor& lrs,
    int64_t increment,
    const std::optional<at::Tensor>& amount,
    const std::optional<at::Tensor>& skip,
    const std::optional<at::Tensor>& plateau,
    const std::optional<at::Tensor>& metric,
    const std::optional<at::Tensor>& previous_scale);

namespace {

constexpr int kThreads = 256;

__global__ void advance_kernel(
    int64_t* __restrict__ step,
    const double* __restrict__ table,
    float* __restrict__ lrs,
    int64_t increment,
    const int64_t* __restrict__ amount,  // nullptr: 1
    const float* __restrict__ skip_float,  // nullptr unless skip is float32
    const bool* __restrict__ skip_bool,  // nullptr unless skip is bool
    double* __restrict__ plateau,  // nullptr: no plateau state
    const float* __restrict__ metric_float,  // nullptr unless the metric is float32
    const double* __restrict__ metric_double,  // nullptr unless the metric is float64
    float* __restrict__ previous_scale,  // nullptr, or skip_float is a scale compared with it (then written)
    int64_t num_segments,
    int64_t num_groups) {
  int64_t delta = amount == nullptr ? increment : increment * *amount;
  const bool skipped = previous_scale != nullptr
      ? *skip_float < *previous_scale  // a GradScaler's scale, lowered since the previous step
      : (skip_float != nullptr && *skip_float != 0.0f) || (skip_bool != nullptr && *skip_bool);
  if (skipped) {
    delta = 0;
  }
  double metric = 0.0;  // torch's float(metrics)
  const double* update = nullptr;  // nullptr: no plateau update on this step
  if (plateau != nullptr && (metric_float != nullptr || metric_double != nullptr) && increment == 1 && !skipped) {
    metric = metric_double != nullptr ? *metric_double : static_cast<double>(*metric_float);
    update = &metric;
  }
  const int64_t new_step = *step + delta;
  const double s = static_cast<double>(new_step);
  for (int64_t g = threadIdx.x; g < num_groups; g += blockDim.x) {
    lrs[g] = static_cast<float>(evaluate_group(table, num_segments, num_groups, g, s, plateau, update));
  }
  __syncthreads();  // every thread has read the old counter (and the previous scale)
  if (threadIdx.x == 0) {
    *step = new_step;
    if (previous_scale != nullptr) {
      *previous_scale = *skip_float;
    }
  }
}

void advance_cuda_clock(
    at::Tensor& step,
    const at::Tensor& table,
    at::Tensor& lrs,
    int64_t increment,
    const std::optional<at::Tensor>& amount,
    const std::optional<at::Tensor>& skip,
    const std::optional<at::Tensor>& plateau,
    const std::optional<at::Tensor>& metric,
    const std::optional<at::Tensor>& previous_scale) {
  check_advance_args(step, table, lrs, increment, amount, skip, plateau, metric, previous_scale);
  TORCH_CHECK(step.is_cuda(), "advance_native_ (CUDA): step, table and lrs must be CUDA tensors, got ", step.device());
  TORCH_CHECK(lrs.scalar_type() == at::kFloat, "advance_native_ (CUDA): lrs must be float32, got ", lrs.scalar_type());
  const c10::cuda::CUDAGuard device_guard(step.device());
  const bool skip_is_bool = skip.has_value() && skip->scalar_type() == at::kBool;
  const bool metric_is_double = metric.has_value() && metric->scalar_type() == at::kDouble;
  advance_kernel<<<1, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      step.data_ptr<int64_t>(),
      table.const_data_ptr<double>(),
      lrs.data_ptr<float>(),
      increment,
      amount.has_value() ? amount->const_data_ptr<int64_t>() : nullptr,
      skip.has_value() && !skip_is_bool ? skip->const_data_ptr<float>() : nullptr,
      skip_is_bool ? skip->const_data_ptr<bool>() : nullptr,
      plateau.has_value() ? plateau->data_ptr<double>() : nullptr,
      metric.has_value() && !metric_is_double ? metric->const_data_ptr<float>() : nullptr,
      metric_is_double ? metric->const_data_ptr<double>() : nullptr,
      previous_scale.has_value() ? previous_scale->data_ptr<float>() : nullptr,
      table.size(0),
      table.size(2));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void advance_cuda(at::Tensor& step, const at::Tensor& table, at::Tensor& lrs, int64_t increment) {
  advance_cuda_clock(step, table, lrs, increment, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt);
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedsched, CUDA, m) {
  m.impl("advance_native_", &advance_cuda);
  m.impl("advance_native_.clock", &advance_cuda_clock);
}

}  // namespace fusedsched
