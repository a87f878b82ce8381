// fusedsched::graphsafe_adam_: Adam(W) in one pass over each parameter on the CPU, every
// hyperparameter read from a one-element tensor when the step runs (fusedsched/adam.py).
//
// graphsafe_adam_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2,
// weight_decay, eps, amsgrad, maximize, decoupled_weight_decay, grad_scale, found_inf): per
// parameter, in the order of torch's capturable foreach Adam (torch/optim/adam.py):
//   t += 1; step_size = 1 / ((beta1^t - 1) / lr); bias2 = sqrt(1 - beta2^t)   (float32, as the step)
//   g = grad / grad_scale, negated with maximize; p *= 1 - lr * wd (AdamW) or g += p * wd (Adam)
//   m = lerp(m, g, 1 - beta1); v = v * beta2 + (g * (1 - beta2)) * g; vmax = max(vmax, v)
//   p += m / (((sqrt(v or vmax) / bias2) + eps) / step_size)
// The numbers are those of the foreach step: 1 - beta1, 1 - beta2 and 1 - lr * wd computed in
// double from the hyperparameters' values, then each number rounded once to the parameter's dtype;
// the bias corrections from float32 betas and lr. Where found_inf is nonzero nothing changes (the
// step count neither). float32 and float64 parameters, contiguous, state of the parameter's dtype,
// steps float32. Built with -ffp-contract=off: every operation rounds once, in the parameter's dtype.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

namespace fusedsched {
namespace {

double value_of(const at::Tensor& t, const char* name) {
  TORCH_CHECK(
      t.device().is_cpu() && t.numel() == 1, "graphsafe_adam_: ", name,
      " must be a one-element CPU tensor, got one on ", t.device(), " of shape ", t.sizes());
  switch (t.scalar_type()) {
    case at::kFloat:
      return *t.const_data_ptr<float>();
    case at::kDouble:
      return *t.const_data_ptr<double>();
    default:
      TORCH_CHECK(false, "graphsafe_adam_: ", name, " must be float32 or float64, got ", t.scalar_type());
  }
  return 0;
}

template <typename T>
struct Hyper {
  T lr, beta1, beta2, weight_decay, eps, one_minus_beta1, one_minus_beta2, decay, scale;
  bool amsgrad, maximize, decoupled, scaled;
};

// The per-element constants in T, from the values in double: 1 - beta and 1 - lr * weight_decay are
// computed in double (as Python computes them from floats), then rounded once to T.
template <typename T>
Hyper<T> hyper_of(
    double lr, double beta1, double beta2, double weight_decay, double eps, double scale, bool amsgrad,
    bool maximize, bool decoupled, bool scaled) {
  return Hyper<T>{static_cast<T>(lr),          static_cast<T>(beta1),        static_cast<T>(beta2),
                  static_cast<T>(weight_decay), static_cast<T>(eps),          static_cast<T>(1.0 - beta1),
                  static_cast<T>(1.0 - beta2),  static_cast<T>(1.0 - lr * weight_decay),
                  static_cast<T>(scale),        amsgrad,
                  maximize,                     decoupled,
                  scaled};
}

// The per-element loop, its options compile-time constants so that the loop body has no branch
// and vectorizes (setup.py builds with -fno-math-errno: sqrt sets no errno, a change of no result),
// cloned for AVX-512 and AVX2 and picked at load time by the CPU; with -ffp-contract=off every
// clone rounds each operation once, so all give the same results.
template <typename T, bool kScaled, bool kMaximize, bool kDecoupled, bool kAmsgrad, bool kLowWeight>
__attribute__((target_clones("avx512f", "avx2", "default"))) void adam_loop(
    T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ exp_avg, T* __restrict__ exp_avg_sq,
    T* __restrict__ max_exp_avg_sq, int64_t begin, int64_t end, const Hyper<T> h, const T step_size, const T bias2) {
  const T w = h.one_minus_beta1;
  const T one_minus_w = T(1) - w;
  for (int64_t j = begin; j < end; ++j) {
    T g = grad[j];
    if constexpr (kScaled) g = g / h.scale;
    if constexpr (kMaximize) g = -g;
    T p = param[j];
    if constexpr (kDecoupled) {
      p = p * h.decay;
    } else {
      g = g + p * h.weight_decay;
    }
    const T m0 = exp_avg[j];
    const T diff = g - m0;
    T m;
    if constexpr (kLowWeight) {  // torch's lerp: the formula depends on the weight
      m = m0 + w * diff;
    } else {
      m = g - diff * one_minus_w;
    }
    T v = exp_avg_sq[j] * h.beta2;
    v = v + (g * h.one_minus_beta2) * g;
    T denom;
    if constexpr (kAmsgrad) {
      const T vmax = max_exp_avg_sq[j] > v ? max_exp_avg_sq[j] : v;
      max_exp_avg_sq[j] = vmax;
      denom = std::sqrt(vmax);
    } else {
      denom = std::sqrt(v);
    }
    denom = denom / bias2;
    denom = denom + h.eps;
    denom = denom / step_size;
    param[j] = p + m / denom;
    exp_avg[j] = m;
    exp_avg_sq[j] = v;
  }
}

#define FUSEDSCHED_BOOL(cond, NAME, ...) \
  if (cond) {                            \
    constexpr bool NAME = true;          \
    __VA_ARGS__                          \
  } else {                               \
    constexpr bool NAME = false;         \
    __VA_ARGS__                          \
  }

template <typename T>
void adam_tensor(
    T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n, const Hyper<T>& h,
    T step_size, T bias2) {
  at::parallel_for(0, n, 16384, [&](int64_t begin, int64_t end) {
    FUSEDSCHED_BOOL(h.scaled, kScaled,
    FUSEDSCHED_BOOL(h.maximize, kMaximize,
    FUSEDSCHED_BOOL(h.decoupled, kDecoupled,
    FUSEDSCHED_BOOL(h.amsgrad, kAmsgrad,
    FUSEDSCHED_BOOL(std::abs(h.one_minus_beta1) < T(0.5), kLowWeight,
      adam_loop<T, kScaled, kMaximize, kDecoupled, kAmsgrad, kLowWeight>(
          param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, begin, end, h, step_size, bias2);
    )))))
  });
}

template <typename T>
void adam_all(
    at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
    at::TensorList max_exp_avg_sqs, at::TensorList steps, const Hyper<T>& h, float beta1, float beta2, float lr) {
  for (size_t i = 0; i < params.size(); ++i) {
    float* step = steps[i].data_ptr<float>();
    const float t = *step + 1.0f;
    *step = t;
    const float step_size = 1.0f / ((std::pow(beta1, t) - 1.0f) / lr);  // negative
    const float bias2 = std::sqrt(-(std::pow(beta2, t) - 1.0f));
    adam_tensor<T>(
        params[i].data_ptr<T>(), grads[i].const_data_ptr<T>(), exp_avgs[i].data_ptr<T>(),
        exp_avg_sqs[i].data_ptr<T>(), h.amsgrad ? max_exp_avg_sqs[i].data_ptr<T>() : nullptr, params[i].numel(), h,
        static_cast<T>(step_size), static_cast<T>(bias2));
  }
}

void graphsafe_adam_cpu(
    at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
    at::TensorList max_exp_avg_sqs, at::TensorList steps, const at::Tensor& lr, const at::Tensor& beta1,
    const at::Tensor& beta2, const at::Tensor& weight_decay, const at::Tensor& eps, bool amsgrad, bool maximize,
    bool decoupled_weight_decay, const std::optional<at::Tensor>& grad_scale,
    const std::optional<at::Tensor>& found_inf) {
  const size_t n = params.size();
  TORCH_CHECK(
      grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n && steps.size() == n &&
          (!amsgrad || max_exp_avg_sqs.size() == n),
      "graphsafe_adam_: the tensor lists must have one entry per parameter (", n, ")");
  if (n == 0) return;
  const at::ScalarType dtype = params[0].scalar_type();
  TORCH_CHECK(
      dtype == at::kFloat || dtype == at::kDouble, "graphsafe_adam_: parameters must be float32 or float64, got ",
      dtype);
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor* tensors[] = {&params[i], &grads[i], &exp_avgs[i], &exp_avg_sqs[i],
                                   amsgrad ? &max_exp_avg_sqs[i] : &params[i]};
    for (const at::Tensor* t : tensors) {
      TORCH_CHECK(
          t->device().is_cpu() && t->scalar_type() == dtype && t->is_contiguous() && t->numel() == params[i].numel(),
          "graphsafe_adam_: parameter ", i, ": every tensor must be a contiguous CPU ", dtype, " tensor of ",
          params[i].numel(), " elements");
    }
    TORCH_CHECK(
        steps[i].device().is_cpu() && steps[i].scalar_type() == at::kFloat && steps[i].numel() == 1,
        "graphsafe_adam_: step ", i, " must be a one-element float32 CPU tensor");
  }
  if (found_inf.has_value() && value_of(*found_inf, "found_inf") != 0) return;  // a skipped step

  // Each number as torch's kernels make it of a Python float (as adam.adam_step's foreach step):
  // the derived ones (1 - beta1, 1 - beta2, AdamW's 1 - lr * weight_decay) in double, then every one
  // cast to the parameters' dtype; the bias corrections in float32 from float32 betas and lr.
  const double lr_d = value_of(lr, "lr");
  const double beta1_d = value_of(beta1, "beta1");
  const double beta2_d = value_of(beta2, "beta2");
  const double wd_d = value_of(weight_decay, "weight_decay");
  const double eps_d = value_of(eps, "eps");
  const double scale = grad_scale.has_value() ? value_of(*grad_scale, "grad_scale") : 1.0;
  const float lr_f = static_cast<float>(lr_d);
  const float beta1_f = static_cast<float>(beta1_d);
  const float beta2_f = static_cast<float>(beta2_d);
  if (dtype == at::kFloat) {
    adam_all<float>(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
        hyper_of<float>(lr_d, beta1_d, beta2_d, wd_d, eps_d, scale, amsgrad, maximize, decoupled_weight_decay,
                        grad_scale.has_value()),
        beta1_f, beta2_f, lr_f);
  } else {
    adam_all<double>(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
        hyper_of<double>(lr_d, beta1_d, beta2_d, wd_d, eps_d, scale, amsgrad, maximize, decoupled_weight_decay,
                         grad_scale.has_value()),
        beta1_f, beta2_f, lr_f);
  }
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(fusedsched, m) {
  m.def(
      "graphsafe_adam_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
      "Tensor(d!)[] max_exp_avg_sqs, Tensor(e!)[] steps, Tensor lr, Tensor beta1, Tensor beta2, "
      "Tensor weight_decay, Tensor eps, bool amsgrad, bool maximize, bool decoupled_weight_decay, "
      "Tensor? grad_scale, Tensor? found_inf) -> ()");
}

TORCH_LIBRARY_IMPL(fusedsched, CPU, m) {
  m.impl("graphsafe_adam_", &graphsafe_adam_cpu);
}

}  // namespace fusedsched
