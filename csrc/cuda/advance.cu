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

#include "../advance.h"

namespace fusedsched {
namespace {

constexpr int kThreads = 256;

__global__ void advance_kernel(
    int64_t* __restrict__ step,
    const double* __restrict__ table,
    float* __restrict__ lrs,
    int64_t increment,
    const ClockInputs inputs,
    double* __restrict__ plateau,  // nullptr: no plateau state
    int64_t num_segments,
    int64_t num_groups) {
  const Clock clock = clock_step(increment, inputs, plateau != nullptr);
  const int64_t new_step = *step + clock.delta;
  const double s = static_cast<double>(new_step);
  const double* update = clock.update_plateaus ? &clock.metric : nullptr;  // nullptr: no plateau update
  for (int64_t g = threadIdx.x; g < num_groups; g += blockDim.x) {
    lrs[g] = static_cast<float>(evaluate_group(table, num_segments, num_groups, g, s, plateau, update));
  }
  __syncthreads();  // every thread has read the old counter (and the previous scale)
  if (threadIdx.x == 0) {
    clock_commit(step, new_step, inputs);
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
  advance_kernel<<<1, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      step.data_ptr<int64_t>(),
      table.const_data_ptr<double>(),
      lrs.data_ptr<float>(),
      increment,
      clock_inputs(amount, skip, metric, previous_scale),
      plateau.has_value() ? plateau->data_ptr<double>() : nullptr,
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
