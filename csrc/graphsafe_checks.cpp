// The argument checks of fusedsched::graphsafe_adam_ and fusedsched::graphsafe_sgd_ (graphsafe.h),
// shared by their CPU and CUDA kernels. Every tensor a kernel touches lives on the parameters'
// device: the parameters and their state contiguous, of one floating dtype, as many elements each
// as their parameter; the hyperparameters, step counts, flags, grad_scale and found_inf one-element
// tensors there.
#include <string>
#include <utility>
#include <vector>

#include "graphsafe.h"

namespace fusedsched {
namespace graphsafe {
namespace {

using Named = std::pair<const char*, at::TensorList>;

bool is_hyper_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// The parameters and, index by index, their state tensors (lists with one tensor per parameter).
void check_parameters(const char* op, at::TensorList params, const std::vector<Named>& state) {
  const size_t n = params.size();
  for (const Named& list : state) {
    TORCH_CHECK(
        list.second.size() == n, op, ": ", list.first, " must have one tensor per parameter (", n, "), got ",
        list.second.size());
  }
  if (n == 0) return;
  const at::ScalarType dtype = params[0].scalar_type();
  const at::Device device = params[0].device();
  TORCH_CHECK(
      is_hyper_dtype(dtype), op, ": parameters must be float32, float64, float16 or bfloat16 (complex ones as pairs ",
      "of reals), got params[0] of dtype ", dtype);
  std::vector<Named> all = {{"params", params}};
  all.insert(all.end(), state.begin(), state.end());
  for (size_t i = 0; i < n; ++i) {
    const int64_t numel = params[i].numel();
    for (const Named& list : all) {
      const at::Tensor& t = list.second[i];
      TORCH_CHECK(
          t.device() == device && t.scalar_type() == dtype && t.is_contiguous() && t.numel() == numel, op, ": ",
          list.first, "[", i, "] must be a contiguous ", dtype, " tensor on ", device, " with ", numel,
          " elements (as params[", i, "]), got a ", (t.is_contiguous() ? "" : "non-contiguous "), t.scalar_type(),
          " tensor on ", t.device(), " of shape ", t.sizes());
    }
  }
}

void check_one_element(const char* op, const char* name, int64_t i, const at::Tensor& t, const at::Device& device,
                       bool (*dtype_ok)(at::ScalarType), const char* dtypes) {
  TORCH_CHECK(
      t.numel() == 1 && t.device() == device && dtype_ok(t.scalar_type()), op, ": ", name,
      (i >= 0 ? "[" + std::to_string(i) + "]" : std::string()), " must be a one-element ", dtypes, " tensor on ",
      device, ", got a ", t.scalar_type(), " tensor on ", t.device(), " of shape ", t.sizes());
}

bool is_float32(at::ScalarType t) {
  return t == at::kFloat;
}

bool is_bool(at::ScalarType t) {
  return t == at::kBool;
}

// Each group's hyperparameters (one one-element tensor per group in each list) and each
// parameter's group.
void check_groups(const char* op, int64_t n, at::IntArrayRef group, const std::vector<Named>& hyper,
                  const at::Device& device) {
  const size_t groups = hyper[0].second.size();
  for (const Named& list : hyper) {
    TORCH_CHECK(
        list.second.size() == groups, op, ": every hyperparameter list must have one tensor per group (",
        hyper[0].first, " has ", groups, "), got ", list.second.size(), " in ", list.first);
    for (size_t g = 0; g < groups; ++g) {
      check_one_element(op, list.first, static_cast<int64_t>(g), list.second[g], device, is_hyper_dtype,
                        "floating-point");
    }
  }
  TORCH_CHECK(
      static_cast<int64_t>(group.size()) == n, op, ": group must give each parameter's group (", n,
      " entries), got ", group.size());
  for (size_t i = 0; i < group.size(); ++i) {
    TORCH_CHECK(
        group[i] >= 0 && group[i] < static_cast<int64_t>(groups), op, ": group[", i, "] must be a group index in [0, ",
        groups, "), got ", group[i]);
  }
}

void check_amp(const char* op, const std::optional<at::Tensor>& grad_scale, const std::optional<at::Tensor>& found_inf,
               const at::Device& device) {
  if (grad_scale.has_value()) {
    check_one_element(op, "grad_scale", -1, *grad_scale, device, is_hyper_dtype, "floating-point");
  }
  if (found_inf.has_value()) {
    check_one_element(op, "found_inf", -1, *found_inf, device, is_hyper_dtype, "floating-point");
  }
}

}  // namespace

void check_adam_args(
    at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
    at::TensorList max_exp_avg_sqs, at::TensorList steps, at::TensorList lr, at::TensorList beta1,
    at::TensorList beta2, at::TensorList weight_decay, at::TensorList eps, at::IntArrayRef group, bool amsgrad,
    const std::optional<at::Tensor>& grad_scale, const std::optional<at::Tensor>& found_inf) {
  const char* op = "graphsafe_adam_";
  std::vector<Named> state = {{"grads", grads}, {"exp_avgs", exp_avgs}, {"exp_avg_sqs", exp_avg_sqs}};
  if (amsgrad) {
    state.emplace_back("max_exp_avg_sqs", max_exp_avg_sqs);
  } else {
    TORCH_CHECK(max_exp_avg_sqs.empty(), op, ": max_exp_avg_sqs must be empty without amsgrad, got ",
                max_exp_avg_sqs.size(), " tensors");
  }
  check_parameters(op, params, state);
  TORCH_CHECK(steps.size() == params.size(), op, ": steps must have one tensor per parameter (", params.size(),
              "), got ", steps.size());
  if (params.empty()) return;
  const at::Device device = params[0].device();
  for (size_t i = 0; i < steps.size(); ++i) {
    check_one_element(op, "steps", static_cast<int64_t>(i), steps[i], device, is_float32, "float32");
  }
  check_groups(op, static_cast<int64_t>(params.size()), group,
               {{"lr", lr}, {"beta1", beta1}, {"beta2", beta2}, {"weight_decay", weight_decay}, {"eps", eps}},
               device);
  check_amp(op, grad_scale, found_inf, device);
}

void check_sgd_args(
    at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers, at::TensorList momentum_started,
    at::TensorList lr, at::TensorList momentum, at::TensorList dampening, at::TensorList weight_decay,
    at::IntArrayRef group, const std::optional<at::Tensor>& grad_scale, const std::optional<at::Tensor>& found_inf) {
  const char* op = "graphsafe_sgd_";
  std::vector<Named> state = {{"grads", grads}};
  if (!momentum_buffers.empty()) {
    state.emplace_back("momentum_buffers", momentum_buffers);
  }
  check_parameters(op, params, state);
  TORCH_CHECK(
      momentum_started.size() == momentum_buffers.size(), op, ": momentum_started must have one flag per momentum ",
      "buffer (", momentum_buffers.size(), "), got ", momentum_started.size());
  if (params.empty()) return;
  const at::Device device = params[0].device();
  for (size_t i = 0; i < momentum_started.size(); ++i) {
    check_one_element(op, "momentum_started", static_cast<int64_t>(i), momentum_started[i], device, is_bool, "bool");
  }
  check_groups(op, static_cast<int64_t>(params.size()), group,
               {{"lr", lr}, {"momentum", momentum}, {"dampening", dampening}, {"weight_decay", weight_decay}}, device);
  check_amp(op, grad_scale, found_inf, device);
}

}  // namespace graphsafe
}  // namespace fusedsched
