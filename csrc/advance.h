// What advance.cpp (the schema, the CPU kernel) and cuda/advance.cu (the CUDA kernel) share on the
// host: the argument checks, with messages naming the argument, and the clock inputs' pointers.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "schedule_math.h"

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

// The clock inputs' data pointers (nullptr where absent), checked beforehand by check_advance_args.
ClockInputs clock_inputs(
    const std::optional<at::Tensor>& amount,
    const std::optional<at::Tensor>& skip,
    const std::optional<at::Tensor>& metric,
    const std::optional<at::Tensor>& previous_scale);

}  // namespace fusedsched
