// fusedsched::graphsafe_sgd_: SGD in one pass over each parameter, every hyperparameter read from a
// one-element tensor when the step runs (src/fusedsched/optimizers/sgd.py). The schema is declared
// here, with the CPU kernel: the CUDA kernel's twin (cuda/graphsafe.cu), the same per-element math
// (graphsafe_math.h) in the same order over the same numbers.
//
// graphsafe_sgd_(params, grads, momentum_buffers, momentum_started, lr, momentum, dampening,
// weight_decay, group, nesterov, maximize, grad_scale, found_inf): parameter i belongs to group
// group[i], whose hyperparameters are lr[group[i]], momentum[group[i]], ... (one-element tensors of
// any floating dtype, read as double). momentum_buffers and momentum_started hold one buffer and
// one 0-dim bool flag per parameter, or are both empty (no momentum: a float momentum of 0).
// Every element as graphsafe_math.h's sgd_update, the buffer moving where the group's momentum is
// not 0 (from the gradient where its flag is not set yet); then each flag is set where the
// momentum is not 0. Where found_inf is nonzero nothing changes (the flags neither). Parameters
// float32, float64, float16 or bfloat16 (one dtype per call), contiguous, buffers of their dtype;
// the math in float for the half types, in the parameters' dtype otherwise. Built with
// -ffp-contract=off: every operation rounds once.
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

using graphsafe::SgdNumbers;

// The per-element loop, its options compile-time constants (see graphsafe_adam.cpp's adam_loop).
template <typename T, typename M, bool kScaled, bool kMaximize, bool kMoves, bool kStarted, bool kNesterov>
__attribute__((target_clones("avx512f", "avx2", "default"))) void sgd_loop(
    T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buffer, int64_t begin, int64_t end,
    const SgdNumbers<M> h) {
  for (int64_t j = begin; j < end; ++j) {
    M p = static_cast<M>(param[j]);
    M b = kMoves ? static_cast<M>(buffer[j]) : M(0);
    graphsafe::sgd_update<M>(p, static_cast<M>(grad[j]), b, h, kScaled, kMaximize, kMoves, kStarted, kNesterov);
    param[j] = static_cast<T>(p);
    if constexpr (kMoves) buffer[j] = static_cast<T>(b);
  }
}

template <typename T, typename M>
void sgd_tensor(T* param, const T* grad, T* buffer, int64_t n, const SgdNumbers<M>& h, bool scaled, bool maximize,
                bool moves, bool started, bool nesterov) {
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    FUSEDSCHED_BOOL(scaled, kScaled,
    FUSEDSCHED_BOOL(maximize, kMaximize,
    FUSEDSCHED_BOOL(moves, kMoves,
    FUSEDSCHED_BOOL(started, kStarted,
    FUSEDSCHED_BOOL(nesterov, kNesterov,
      sgd_loop<T, M, kScaled, kMaximize, kMoves, kStarted, kNesterov>(param, grad, buffer, begin, end, h);
    )))))
  });
}

void graphsafe_sgd_cpu(
    at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers, at::TensorList momentum_started,
    at::TensorList lr, at::TensorList momentum, at::TensorList dampening, at::TensorList weight_decay,
    at::IntArrayRef group, bool nesterov, bool maximize, const std::optional<at::Tensor>& grad_scale,
    const std::optional<at::Tensor>& found_inf) {
  graphsafe::check_sgd_args(
      params, grads, momentum_buffers, momentum_started, lr, momentum, dampening, weight_decay, group, grad_scale,
      found_inf);
  if (params.empty()) return;
  TORCH_CHECK(params[0].device().is_cpu(), "graphsafe_sgd_ (CPU): the tensors must be on the CPU, got ",
              params[0].device());
  if (found_inf.has_value() && graphsafe::host_value(*found_inf) != 0) return;  // a skipped step
  const bool scaled = grad_scale.has_value();
  const double scale = scaled ? graphsafe::host_value(*grad_scale) : 1.0;
  const bool with_buffers = !momentum_buffers.empty();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "graphsafe_sgd_", [&] {
    using M = at::opmath_type<scalar_t>;
    std::vector<SgdNumbers<M>> numbers;
    for (size_t g = 0; g < lr.size(); ++g) {
      numbers.push_back(graphsafe::sgd_numbers<M>(
          graphsafe::host_value(lr[g]), graphsafe::host_value(momentum[g]), graphsafe::host_value(dampening[g]),
          graphsafe::host_value(weight_decay[g]), scale));
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const SgdNumbers<M>& h = numbers[group[i]];
      const bool moves = with_buffers && h.nonzero;
      bool* started = with_buffers ? momentum_started[i].data_ptr<bool>() : nullptr;
      sgd_tensor<scalar_t, M>(
          params[i].data_ptr<scalar_t>(), grads[i].const_data_ptr<scalar_t>(),
          moves ? momentum_buffers[i].data_ptr<scalar_t>() : nullptr, params[i].numel(), h, scaled, maximize, moves,
          moves && *started, nesterov);
      if (moves) *started = true;
    }
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fusedsched, m) {
  m.def(
      "graphsafe_sgd_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] momentum_buffers, "
      "Tensor(c!)[] momentum_started, Tensor[] lr, Tensor[] momentum, Tensor[] dampening, Tensor[] weight_decay, "
      "int[] group, bool nesterov, bool maximize, Tensor? grad_scale, Tensor? found_inf) -> ()");
}

TORCH_LIBRARY_IMPL(fusedsched, CPU, m) {
  m.impl("graphsafe_sgd_", &graphsafe_sgd_cpu);
}

}  // namespace fusedsched
