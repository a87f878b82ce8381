// fusedsched::graphsafe_adam_: Adam(W) in one pass over each parameter, every hyperparameter read
// from a one-element tensor when the step runs (src/fusedsched/optimizers/adam.py). The schema is
// declared here, with the CPU kernel: the CUDA kernel's twin (cuda/graphsafe.cu), the same
// per-element math (graphsafe_math.h) in the same order over the same numbers.
//
// graphsafe_adam_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2,
// weight_decay, eps, group, amsgrad, maximize, decoupled_weight_decay, grad_scale, found_inf):
// parameter i belongs to group group[i], whose hyperparameters are lr[group[i]], beta1[group[i]], ...
// (one-element tensors of any floating dtype, read as double). Per parameter, with t = steps[i] + 1:
//   step_size = 1 / ((beta1^t - 1) / lr); bias2 = sqrt(1 - beta2^t)   (float32, as the step count)
//   every element as graphsafe_math.h's adam_update; then steps[i] = t.
// Where found_inf is nonzero nothing changes (the step counts neither). Parameters float32, float64,
// float16 or bfloat16 (one dtype per call), contiguous, state of their dtype, steps float32; the
// math in float for the half types (as torch's fused kernels), in the parameters' dtype otherwise.
// Built with -ffp-contract=off: every operation rounds once.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "graphsafe.h"
#include "graphsafe_math.h"

namespace fusedsched {
namespace {

using graphsafe::AdamBias;
using graphsafe::AdamNumbers;

// The per-element loop, its options compile-time constants so that the loop body has no branch
// and vectorizes (setup.py builds with -fno-math-errno: sqrt sets no errno, a change of no result),
// cloned for AVX-512 and AVX2 and picked at load time by the CPU; with -ffp-contract=off every
// clone rounds each operation once, so all give the same results.
template <typename T, typename M, bool kScaled, bool kMaximize, bool kDecoupled, bool kAmsgrad, bool kLowWeight>
__attribute__((target_clones("avx512f", "avx2", "default"))) void adam_loop(
    T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ exp_avg, T* __restrict__ exp_avg_sq,
    T* __restrict__ max_exp_avg_sq, int64_t begin, int64_t end, const AdamNumbers<M> h, const M step_size,
    const M bias2) {
  for (int64_t j = begin; j < end; ++j) {
    M p = static_cast<M>(param[j]);
    M m = static_cast<M>(exp_avg[j]);
    M v = static_cast<M>(exp_avg_sq[j]);
    M vmax = kAmsgrad ? static_cast<M>(max_exp_avg_sq[j]) : M(0);
    graphsafe::adam_update<M>(
        p, static_cast<M>(grad[j]), m, v, vmax, h, step_size, bias2, kScaled, kMaximize, kDecoupled, kAmsgrad,
        kLowWeight);
    param[j] = static_cast<T>(p);
    exp_avg[j] = static_cast<T>(m);
    exp_avg_sq[j] = static_cast<T>(v);
    if constexpr (kAmsgrad) max_exp_avg_sq[j] = static_cast<T>(vmax);
  }
}

template <typename T, typename M>
void adam_tensor(
    T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n, const AdamNumbers<M>& h,
    M step_size, M bias2, bool scaled, bool maximize, bool decoupled, bool amsgrad) {
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    FUSEDSCHED_BOOL(scaled, kScaled,
    FUSEDSCHED_BOOL(maximize, kMaximize,
    FUSEDSCHED_BOOL(decoupled, kDecoupled,
    FUSEDSCHED_BOOL(amsgrad, kAmsgrad,
    FUSEDSCHED_BOOL(h.low_weight, kLowWeight,
      adam_loop<T, M, kScaled, kMaximize, kDecoupled, kAmsgrad, kLowWeight>(
          param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, begin, end, h, step_size, bias2);
    )))))
  });
}

void graphsafe_adam_cpu(
    at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
    at::TensorList max_exp_avg_sqs, at::TensorList steps, at::TensorList lr, at::TensorList beta1,
    at::TensorList beta2, at::TensorList weight_decay, at::TensorList eps, at::IntArrayRef group, bool amsgrad,
    bool maximize, bool decoupled_weight_decay, const std::optional<at::Tensor>& grad_scale,
    const std::optional<at::Tensor>& found_inf) {
  graphsafe::check_adam_args(
      params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, weight_decay, eps, group, amsgrad,
      grad_scale, found_inf);
  if (params.empty()) return;
  TORCH_CHECK(params[0].device().is_cpu(), "graphsafe_adam_ (CPU): the tensors must be on the CPU, got ",
              params[0].device());
  if (found_inf.has_value() && graphsafe::host_value(*found_inf) != 0) return;  // a skipped step
  const bool scaled = grad_scale.has_value();
  const double scale = scaled ? graphsafe::host_value(*grad_scale) : 1.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "graphsafe_adam_", [&] {
    using M = at::opmath_type<scalar_t>;
    std::vector<AdamNumbers<M>> numbers;
    std::vector<double> lrs, beta1s, beta2s;
    for (size_t g = 0; g < lr.size(); ++g) {
      lrs.push_back(graphsafe::host_value(lr[g]));
      beta1s.push_back(graphsafe::host_value(beta1[g]));
      beta2s.push_back(graphsafe::host_value(beta2[g]));
      numbers.push_back(graphsafe::adam_numbers<M>(
          lrs.back(), beta1s.back(), beta2s.back(), graphsafe::host_value(weight_decay[g]),
          graphsafe::host_value(eps[g]), scale));
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const int64_t g = group[i];
      float* step = steps[i].data_ptr<float>();
      const float t = *step + 1.0f;
      const AdamBias bias = graphsafe::adam_bias(lrs[g], beta1s[g], beta2s[g], t);
      adam_tensor<scalar_t, M>(
          params[i].data_ptr<scalar_t>(), grads[i].const_data_ptr<scalar_t>(), exp_avgs[i].data_ptr<scalar_t>(),
          exp_avg_sqs[i].data_ptr<scalar_t>(), amsgrad ? max_exp_avg_sqs[i].data_ptr<scalar_t>() : nullptr,
          params[i].numel(), numbers[g], static_cast<M>(bias.step_size), static_cast<M>(bias.bias2), scaled, maximize,
          decoupled_weight_decay, amsgrad);
      *step = t;
    }
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fusedsched, m) {
  m.def(
      "graphsafe_adam_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
      "Tensor(d!)[] max_exp_avg_sqs, Tensor(e!)[] steps, Tensor[] lr, Tensor[] beta1, Tensor[] beta2, "
      "Tensor[] weight_decay, Tensor[] eps, int[] group, bool amsgrad, bool maximize, bool decoupled_weight_decay, "
      "Tensor? grad_scale, Tensor? found_inf) -> ()");
}

TORCH_LIBRARY_IMPL(fusedsched, CPU, m) {
  m.impl("graphsafe_adam_", &graphsafe_adam_cpu);
}

}  // namespace fusedsched
