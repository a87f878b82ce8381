// The schedule math, once, for the C++ (CPU) and CUDA kernels of fusedsched::advance_native_.
//
// Mirrors src/fusedsched/program.py, the single source of truth: the shape and column codes below
// must equal program.Shape / program.Column / program.NUM_COLUMNS (tests/test_codes.py checks),
// and evaluate_group() keeps the exact operation order of program.evaluate_table so the float64
// results round the same way. Build without FMA contraction (-ffp-contract=off for C++,
// -fmad=false for nvcc): a fused multiply-add rounds once where the reference rounds twice.
//
// Table layout: float64 [num_segments, NUM_COLUMNS, num_groups], contiguous; padding segments
// have START = +inf, so no step selects them.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define FUSEDSCHED_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FUSEDSCHED_HOST_DEVICE inline
#endif

namespace fusedsched {

enum class Shape : int { CONSTANT = 0, LINEAR = 1, COSINE = 2 };

enum class Column : int { START = 0, SHAPE = 1, END = 2, V0 = 3, V1 = 4, P = 5 };

constexpr int NUM_COLUMNS = 6;

static_assert(static_cast<int>(Column::P) + 1 == NUM_COLUMNS, "NUM_COLUMNS must follow the last Column");

// table[k, c, g]
FUSEDSCHED_HOST_DEVICE double table_at(
    const double* table, int64_t num_groups, int64_t k, Column c, int64_t g) {
  return table[(k * NUM_COLUMNS + static_cast<int64_t>(c)) * num_groups + g];
}

// max / min that propagate NaN like torch.maximum / torch.minimum.
FUSEDSCHED_HOST_DEVICE double nan_max(double a, double b) {
  return (a > b || a != a) ? a : b;
}
FUSEDSCHED_HOST_DEVICE double nan_min(double a, double b) {
  return (a < b || a != a) ? a : b;
}

// Group g's float64 learning rate at step s: its last segment with START <= s (segment 0 when
// none is, like evaluate_table), evaluated with the shape formula of program.py:
//   CONSTANT: v0
//   LINEAR:   clamp(v0 + ((v1 - v0) / (end - start)) * (s - start), min(v0, v1), max(v0, v1))
//   COSINE:   v1 + (v0 - v1) * 0.5 * (1 + cos(p * (s - start) / (end - start)))
FUSEDSCHED_HOST_DEVICE double evaluate_group(
    const double* table, int64_t num_segments, int64_t num_groups, int64_t g, double s) {
  int64_t k = 0;
  for (int64_t j = 1; j < num_segments; ++j) {
    if (table_at(table, num_groups, j, Column::START, g) <= s) {
      k = j;
    }
  }
  const double start = table_at(table, num_groups, k, Column::START, g);
  const double shape = table_at(table, num_groups, k, Column::SHAPE, g);
  const double end = table_at(table, num_groups, k, Column::END, g);
  const double v0 = table_at(table, num_groups, k, Column::V0, g);
  const double v1 = table_at(table, num_groups, k, Column::V1, g);
  const double p = table_at(table, num_groups, k, Column::P, g);
  const double span = end - start;
  if (shape == static_cast<double>(Shape::LINEAR)) {
    const double linear = v0 + ((v1 - v0) / span) * (s - start);
    return nan_min(nan_max(linear, nan_min(v0, v1)), nan_max(v0, v1));
  }
  if (shape == static_cast<double>(Shape::COSINE)) {
    return v1 + (v0 - v1) * 0.5 * (1 + cos(p * (s - start) / span));
  }
  return v0;
}

}  // namespace fusedsched
