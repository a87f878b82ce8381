// fusedsched::advance_native_: the schema (declared once, here) and its CPU implementation.
//
// advance_native_(step, table, lrs, increment): read the int64 counter `step`, add `increment`
// (0 or 1), evaluate every group's schedule from the float64 `table` [segments, NUM_COLUMNS,
// groups] at the new step, store into `lrs` (one element per group), write the counter back.
// `lrs` is float32 (what fused optimizers read); on CPU it may also be float64, which host mode
// uses to get compute_lr's values bit for bit. The CUDA implementation is in cuda/advance.cu;
// the math for both is schedule_math.h.
//
// The overload advance_native_.clock(step, table, lrs, increment, amount, skip, plateau, metric) adds
// `increment` times `amount` (an int64 one-element tensor; 1 when None), or nothing when `skip` (a
// one-element float32 or bool tensor; never when None) is nonzero. `plateau` (float64
// [NUM_PLATEAU_COLUMNS, groups], mutated) holds the PLATEAU segments' values; on a step that advances
// (increment 1, not skipped) `metric` (a one-element float32 or float64 tensor, read as float64)
// first updates the column of every group whose active segment is a PLATEAU (schedule_math.h's
// plateau_update). With `previous_scale` (a one-element float32 tensor, mutated), `skip` is a
// GradScaler's scale rather than a flag: the step is skipped iff skip < previous_scale (update()
// lowered the scale since the previous step), and previous_scale then holds skip: the clock rule is
// schedule_math.h's clock_step(). Eager Python calls both overloads through fusedsched._C.launch
// (eager.cpp, which also defines the module).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "advance.h"

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
    const std::optional<at::Tensor>& previous_scale) {
  TORCH_CHECK(
      step.scalar_type() == at::kLong && step.numel() == 1,
      "advance_native_: step must be a one-element int64 tensor, got ", step.scalar_type(), " of shape ",
      step.sizes());
  TORCH_CHECK(
      table.scalar_type() == at::kDouble && table.dim() == 3 && table.size(1) == NUM_COLUMNS,
      "advance_native_: table must be float64 of shape [segments, ", NUM_COLUMNS, ", groups], got ",
      table.scalar_type(), " of shape ", table.sizes());
  TORCH_CHECK(table.size(0) >= 1, "advance_native_: table must have at least one segment, got shape ", table.sizes());
  TORCH_CHECK(table.is_contiguous(), "advance_native_: table must be contiguous");
  TORCH_CHECK(
      (lrs.scalar_type() == at::kFloat || lrs.scalar_type() == at::kDouble) && lrs.dim() == 1 &&
          lrs.size(0) == table.size(2) && lrs.is_contiguous(),
      "advance_native_: lrs must be a contiguous float32 (or, on CPU, float64) vector of ", table.size(2),
      " elements (one per group), got ", lrs.scalar_type(), " of shape ", lrs.sizes());
  TORCH_CHECK(
      step.device() == table.device() && table.device() == lrs.device(),
      "advance_native_: step, table and lrs must share a device, got ", step.device(), ", ", table.device(), ", ",
      lrs.device());
  TORCH_CHECK(increment == 0 || increment == 1, "advance_native_: increment must be 0 or 1, got ", increment);
  if (amount.has_value()) {
    TORCH_CHECK(
        amount->scalar_type() == at::kLong && amount->numel() == 1,
        "advance_native_: amount must be a one-element int64 tensor, got ", amount->scalar_type(), " of shape ",
        amount->sizes());
    TORCH_CHECK(
        amount->device() == step.device(), "advance_native_: amount must be on the counter's device ", step.device(),
        ", got ", amount->device());
  }
  if (skip.has_value()) {
    TORCH_CHECK(
        (skip->scalar_type() == at::kFloat || skip->scalar_type() == at::kBool) && skip->numel() == 1,
        "advance_native_: skip must be a one-element float32 or bool tensor, got ", skip->scalar_type(), " of shape ",
        skip->sizes());
    TORCH_CHECK(
        skip->device() == step.device(), "advance_native_: skip must be on the counter's device ", step.device(),
        ", got ", skip->device());
  }
  if (plateau.has_value()) {
    TORCH_CHECK(
        plateau->scalar_type() == at::kDouble && plateau->dim() == 2 && plateau->size(0) == NUM_PLATEAU_COLUMNS &&
            plateau->size(1) == table.size(2),
        "advance_native_: plateau must be a float64 tensor of shape [", NUM_PLATEAU_COLUMNS, ", ", table.size(2),
        "] (one column per group), got ", plateau->scalar_type(), " of shape ", plateau->sizes());
    TORCH_CHECK(plateau->is_contiguous(), "advance_native_: plateau must be contiguous");
    TORCH_CHECK(
        plateau->device() == table.device(), "advance_native_: plateau must be on the table's device ",
        table.device(), ", got ", plateau->device());
  }
  if (metric.has_value()) {
    TORCH_CHECK(
        (metric->scalar_type() == at::kFloat || metric->scalar_type() == at::kDouble) && metric->numel() == 1,
        "advance_native_: metric must be a one-element float32 or float64 tensor, got ", metric->scalar_type(),
        " of shape ", metric->sizes());
    TORCH_CHECK(
        metric->device() == step.device(), "advance_native_: metric must be on the counter's device ", step.device(),
        ", got ", metric->device());
  }
  if (previous_scale.has_value()) {
    TORCH_CHECK(
        previous_scale->scalar_type() == at::kFloat && previous_scale->numel() == 1,
        "advance_native_: previous_scale must be a one-element float32 tensor, got ", previous_scale->scalar_type(),
        " of shape ", previous_scale->sizes());
    TORCH_CHECK(
        previous_scale->device() == step.device(), "advance_native_: previous_scale must be on the counter's device ",
        step.device(), ", got ", previous_scale->device());
    TORCH_CHECK(
        skip.has_value() && skip->scalar_type() == at::kFloat,
        "advance_native_: previous_scale needs skip, a float32 scale to compare it with");
  }
}

ClockInputs clock_inputs(
    const std::optional<at::Tensor>& amount,
    const std::optional<at::Tensor>& skip,
    const std::optional<at::Tensor>& metric,
    const std::optional<at::Tensor>& previous_scale) {
  const bool skip_is_bool = skip.has_value() && skip->scalar_type() == at::kBool;
  const bool metric_is_double = metric.has_value() && metric->scalar_type() == at::kDouble;
  return ClockInputs{
      amount.has_value() ? amount->const_data_ptr<int64_t>() : nullptr,
      skip.has_value() && !skip_is_bool ? skip->const_data_ptr<float>() : nullptr,
      skip_is_bool ? skip->const_data_ptr<bool>() : nullptr,
      previous_scale.has_value() ? previous_scale->data_ptr<float>() : nullptr,
      metric.has_value() && !metric_is_double ? metric->const_data_ptr<float>() : nullptr,
      metric_is_double ? metric->const_data_ptr<double>() : nullptr,
  };
}

namespace {

template <typename out_t>
void evaluate_all(
    const double* table, int64_t num_segments, int64_t num_groups, double s, out_t* lrs, double* plateau,
    const double* metric) {
  for (int64_t g = 0; g < num_groups; ++g) {
    lrs[g] = static_cast<out_t>(evaluate_group(table, num_segments, num_groups, g, s, plateau, metric));
  }
}

void advance_cpu_clock(
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
  TORCH_CHECK(step.is_cpu(), "advance_native_ (CPU): step, table and lrs must be CPU tensors, got ", step.device());
  int64_t* step_ptr = step.data_ptr<int64_t>();
  const ClockInputs inputs = clock_inputs(amount, skip, metric, previous_scale);
  double* plateau_ptr = plateau.has_value() ? plateau->data_ptr<double>() : nullptr;
  const Clock clock = clock_step(increment, inputs, plateau_ptr != nullptr);
  const int64_t new_step = *step_ptr + clock.delta;
  const double s = static_cast<double>(new_step);
  const double* update = clock.update_plateaus ? &clock.metric : nullptr;  // nullptr: no plateau update
  const double* table_ptr = table.const_data_ptr<double>();
  if (lrs.scalar_type() == at::kDouble) {
    evaluate_all(table_ptr, table.size(0), table.size(2), s, lrs.data_ptr<double>(), plateau_ptr, update);
  } else {
    evaluate_all(table_ptr, table.size(0), table.size(2), s, lrs.data_ptr<float>(), plateau_ptr, update);
  }
  clock_commit(step_ptr, new_step, inputs);
}

void advance_cpu(at::Tensor& step, const at::Tensor& table, at::Tensor& lrs, int64_t increment) {
  advance_cpu_clock(step, table, lrs, increment, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt);
}

}  // namespace

TORCH_LIBRARY(fusedsched, m) {
  m.def("advance_native_(Tensor(a!) step, Tensor table, Tensor(b!) lrs, int increment) -> ()");
  m.def(
      "advance_native_.clock(Tensor(a!) step, Tensor table, Tensor(b!) lrs, int increment, Tensor? amount, "
      "Tensor? skip, Tensor(c!)? plateau=None, Tensor? metric=None, Tensor(d!)? previous_scale=None) -> ()");
}

TORCH_LIBRARY_IMPL(fusedsched, CPU, m) {
  m.impl("advance_native_", &advance_cpu);
  m.impl("advance_native_.clock", &advance_cpu_clock);
}

}  // namespace fusedsched
