// The graph-safe optimizers' per-element math, once, for the CPU kernels (graphsafe_adam.cpp,
// graphsafe_sgd.cpp: the CUDA kernels' CPU twin, which the tests run) and the CUDA kernels
// (cuda/graphsafe.cu).
//
// Mirrors the operation order of the foreach steps in src/fusedsched/optimizers/ (adam.adam_step,
// sgd.sgd_step: torch's capturable foreach Adam and foreach SGD), and the numbers they make of each
// hyperparameter: the value read as double (a Python float's precision), the derived numbers
// (1 - beta1, 1 - beta2, AdamW's 1 - lr * weight_decay, SGD's 1 - dampening) computed in double,
// then each rounded once to M, the type the math runs in (float for float32, bfloat16 and float16
// parameters, as torch's fused kernels compute them; double for float64); Adam's bias corrections
// in float32 from float32 betas and lr, as the float32 step count. Build without FMA contraction
// (-ffp-contract=off, nvcc -fmad=false): every operation rounds once.
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"

namespace fusedsched {
namespace graphsafe {

FUSEDSCHED_HOST_DEVICE float root(float x) {
#ifdef __CUDA_ARCH__
  return ::sqrtf(x);  // correctly rounded (nvcc's default -prec-sqrt=true)
#else
  return std::sqrt(x);
#endif
}

FUSEDSCHED_HOST_DEVICE double root(double x) {
#ifdef __CUDA_ARCH__
  return ::sqrt(x);
#else
  return std::sqrt(x);
#endif
}

FUSEDSCHED_HOST_DEVICE float power(float base, float exponent) {
#ifdef __CUDA_ARCH__
  return ::powf(base, exponent);
#else
  return std::pow(base, exponent);  // the float overload: powf
#endif
}

// --- Adam / AdamW ---------------------------------------------------------------------------

// One group's numbers for one step, in M.
template <typename M>
struct AdamNumbers {
  M beta2, weight_decay, eps, one_minus_beta1, one_minus_beta2, decay, scale;
  bool low_weight;  // torch's lerp takes self + w * (end - self) for a weight below 0.5
  bool has_decay;   // Adam's g + p * weight_decay where weight_decay != 0 (torch's test on a float)
};

template <typename M>
FUSEDSCHED_HOST_DEVICE AdamNumbers<M> adam_numbers(
    double lr, double beta1, double beta2, double weight_decay, double eps, double scale) {
  AdamNumbers<M> h;
  h.beta2 = static_cast<M>(beta2);
  h.weight_decay = static_cast<M>(weight_decay);
  h.eps = static_cast<M>(eps);
  h.one_minus_beta1 = static_cast<M>(1.0 - beta1);
  h.one_minus_beta2 = static_cast<M>(1.0 - beta2);
  h.decay = static_cast<M>(1.0 - lr * weight_decay);
  h.scale = static_cast<M>(scale);
  h.low_weight = h.one_minus_beta1 < M(0.5);
  h.has_decay = weight_decay != 0.0;
  return h;
}

// step_size = 1 / ((beta1^t - 1) / lr) (negative) and bias2 = sqrt(1 - beta2^t), in float32 from
// float32 lr and betas at the step t (the step count after this step's increment).
struct AdamBias {
  float step_size, bias2;
};

FUSEDSCHED_HOST_DEVICE AdamBias adam_bias(double lr, double beta1, double beta2, float t) {
  AdamBias b;
  b.step_size = 1.0f / ((power(static_cast<float>(beta1), t) - 1.0f) / static_cast<float>(lr));
  b.bias2 = root(-(power(static_cast<float>(beta2), t) - 1.0f));
  return b;
}

// One element, in the foreach step's order:
//   g = grad / grad_scale, negated with maximize; p *= 1 - lr * wd (AdamW) or g += p * wd (Adam)
//   m = lerp(m, g, 1 - beta1); v = v * beta2 + (g * (1 - beta2)) * g; vmax = max(vmax, v)
//   p += m / (((sqrt(v or vmax) / bias2) + eps) / step_size)
// The flags are constants in the CPU loops (so that they vectorize) and uniform per block on CUDA.
template <typename M>
FUSEDSCHED_HOST_DEVICE void adam_update(
    M& p, M g, M& m, M& v, M& vmax, const AdamNumbers<M>& h, M step_size, M bias2, bool scaled, bool maximize,
    bool decoupled, bool amsgrad, bool low_weight) {
  if (scaled) g = g / h.scale;
  if (maximize) g = -g;
  if (decoupled) {
    p = p * h.decay;
  } else if (h.has_decay) {
    g = g + p * h.weight_decay;
  }
  const M diff = g - m;
  if (low_weight) {
    m = m + h.one_minus_beta1 * diff;
  } else {
    m = g - diff * (M(1) - h.one_minus_beta1);
  }
  v = v * h.beta2;
  v = v + (g * h.one_minus_beta2) * g;
  M denom;
  if (amsgrad) {
    vmax = vmax > v ? vmax : v;
    denom = root(vmax);
  } else {
    denom = root(v);
  }
  denom = denom / bias2;
  denom = denom + h.eps;
  denom = denom / step_size;
  p = p + m / denom;
}

// --- SGD ------------------------------------------------------------------------------------

template <typename M>
struct SgdNumbers {
  M neg_lr, momentum, keep, weight_decay, scale;  // keep = 1 - dampening
  bool nonzero;    // momentum != 0: the buffer moves (else it stays, and the step goes along g)
  bool has_decay;  // weight_decay != 0
};

template <typename M>
FUSEDSCHED_HOST_DEVICE SgdNumbers<M> sgd_numbers(
    double lr, double momentum, double dampening, double weight_decay, double scale) {
  SgdNumbers<M> h;
  h.neg_lr = -static_cast<M>(lr);
  h.momentum = static_cast<M>(momentum);
  h.keep = static_cast<M>(1.0 - dampening);
  h.weight_decay = static_cast<M>(weight_decay);
  h.scale = static_cast<M>(scale);
  h.nonzero = momentum != 0.0;
  h.has_decay = weight_decay != 0.0;
  return h;
}

// One element, in the foreach step's order:
//   g = grad / grad_scale, negated with maximize; g += p * wd
//   with a buffer and momentum != 0: b = started ? b * momentum + g * (1 - dampening) : g;
//                                    d = nesterov ? g + b * momentum : b
//   else d = g (a buffer stays as it is);  p += d * -lr
// `moves` is with_buffer && momentum != 0; the caller sets the started flag after the step.
template <typename M>
FUSEDSCHED_HOST_DEVICE void sgd_update(
    M& p, M g, M& b, const SgdNumbers<M>& h, bool scaled, bool maximize, bool moves, bool started, bool nesterov) {
  if (scaled) g = g / h.scale;
  if (maximize) g = -g;
  if (h.has_decay) g = g + p * h.weight_decay;
  M d = g;
  if (moves) {
    b = started ? b * h.momentum + g * h.keep : g;
    d = nesterov ? g + b * h.momentum : b;
  }
  p = p + d * h.neg_lr;
}

}  // namespace graphsafe
}  // namespace fusedsched
