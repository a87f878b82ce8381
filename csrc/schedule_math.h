// The schedule math, once, for the C++ (CPU) and CUDA kernels of fusedsched::advance_native_.
//
// Mirrors src/fusedsched/schedule/program.py, the single source of truth: the shape and column codes
// below must equal program.Shape / program.Column / program.NUM_COLUMNS (tests/ops/test_codes.py
// checks), and segment_value() keeps the exact operation order of the reference formulas
// (fusedsched.schedule.kinds) and of program.segment_values, with the C library's cos / pow / log / sqrt / tanh / floor, so the CPU
// kernel writing float64 reproduces compute_lr bit for bit. Build without FMA contraction
// (-ffp-contract=off for C++, -fmad=false for nvcc): a fused multiply-add rounds once where the
// reference rounds twice.
//
// Table layout: float64 [num_segments, NUM_COLUMNS, num_groups], contiguous; padding segments
// have START = +inf, so no step selects them. The plateau state
// (src/fusedsched/schedule/plateau_state.py; the codes below mirror its PlateauColumn / PlateauMode):
// float64 [NUM_PLATEAU_COLUMNS, num_groups], contiguous, one column per group. clock_step() is the
// op's clock rule (a skipped step, an amount, when a plateau takes its metric).
#pragma once

#include <cmath>
#include <cstdint>

#include "host_device.h"

namespace fusedsched {

enum class Shape : int {
  CONSTANT = 0,
  LINEAR = 1,
  COSINE = 2,
  EXPONENTIAL = 3,
  POWER = 4,
  INV_SQRT = 5,
  ONE_MINUS_SQRT = 6,
  COSINE_RESTARTS = 7,
  COSINE_CYCLES = 8,
  LOG = 9,
  CYCLIC = 10,
  PLATEAU = 11,
  TANH = 12,
  EXP_ANNEAL = 13
};

enum class Column : int {
  START = 0,
  STOP = 1,
  SHAPE = 2,
  SHIFT = 3,
  ORIGIN = 4,
  END = 5,
  V0 = 6,
  V1 = 7,
  P = 8,
  Q = 9,
  W = 10,
  FACTORS = 11
};

constexpr int NUM_COLUMNS = 12;

static_assert(static_cast<int>(Column::FACTORS) + 1 == NUM_COLUMNS, "NUM_COLUMNS must follow the last Column");

enum class PlateauColumn : int {
  VALUE = 0,
  BEST = 1,
  BAD_EPOCHS = 2,
  COOLDOWN_LEFT = 3,
  INITIAL = 4,
  FACTOR = 5,
  MIN = 6,
  THRESHOLD = 7,
  MODE = 8,
  PATIENCE = 9,
  COOLDOWN = 10,
  EPS = 11
};

constexpr int NUM_PLATEAU_COLUMNS = 12;

static_assert(
    static_cast<int>(PlateauColumn::EPS) + 1 == NUM_PLATEAU_COLUMNS, "NUM_PLATEAU_COLUMNS must follow the last PlateauColumn");

enum class PlateauMode : int { MIN_REL = 0, MIN_ABS = 1, MAX_REL = 2, MAX_ABS = 3 };

// The op's inputs that move the clock, as pointers into device memory (CUDA) or host memory (CPU);
// nullptr where absent. Both kernels fill one from their tensors and call clock_step().
struct ClockInputs {
  const int64_t* amount;  // nullptr: 1
  const float* skip_float;  // a found_inf flag (nonzero: skipped), or with previous_scale a GradScaler's scale
  const bool* skip_bool;
  float* previous_scale;  // the scale of the previous step (then skip_float is a scale); written by clock_commit()
  const float* metric_float;  // a plateau's metric, read as float64 (torch's float(metrics))
  const double* metric_double;
};

// What one launch does with the clock: move the counter by `delta`; when `update_plateaus`, update
// the plateaus active at the new step with `metric` first.
struct Clock {
  int64_t delta;
  bool update_plateaus;
  double metric;
};

// The clock rule, once for both kernels (mirrored by ops/_reference.py's clock() and ops/_triton.py):
//   skipped = previous_scale ? scale < previous_scale : skip != 0   (no skip input: never skipped)
//   delta   = skipped ? 0 : increment * amount                      (amount 1 when absent)
//   a plateau takes the metric only on a step that advances: increment 1, not skipped.
// Reads every input once; writes nothing (clock_commit() writes the counter and the previous scale).
FUSEDSCHED_HOST_DEVICE Clock clock_step(int64_t increment, const ClockInputs& in, bool has_plateau) {
  const bool skipped = in.previous_scale != nullptr
      ? *in.skip_float < *in.previous_scale  // a GradScaler's scale, lowered since the previous step
      : (in.skip_float != nullptr && *in.skip_float != 0.0f) || (in.skip_bool != nullptr && *in.skip_bool);
  Clock clock{skipped ? 0 : (in.amount == nullptr ? increment : increment * *in.amount), false, 0.0};
  const bool has_metric = in.metric_float != nullptr || in.metric_double != nullptr;
  if (has_plateau && has_metric && increment == 1 && !skipped) {
    clock.update_plateaus = true;
    clock.metric = in.metric_double != nullptr ? *in.metric_double : static_cast<double>(*in.metric_float);
  }
  return clock;
}

// After every group was evaluated (on CUDA: by one thread, after the block's barrier): the new
// counter, and a GradScaler's scale becomes the previous one.
FUSEDSCHED_HOST_DEVICE void clock_commit(int64_t* step, int64_t new_step, const ClockInputs& in) {
  *step = new_step;
  if (in.previous_scale != nullptr) {
    *in.previous_scale = *in.skip_float;
  }
}

// table[k, c, g]
FUSEDSCHED_HOST_DEVICE double table_at(
    const double* table, int64_t num_groups, int64_t k, Column c, int64_t g) {
  return table[(k * NUM_COLUMNS + static_cast<int64_t>(c)) * num_groups + g];
}

// plateau[c, g]
FUSEDSCHED_HOST_DEVICE double& plateau_at(double* plateau, int64_t num_groups, PlateauColumn c, int64_t g) {
  return plateau[static_cast<int64_t>(c) * num_groups + g];
}

// torch's ReduceLROnPlateau._is_better for the mode code `mode` (every comparison with NaN is false).
FUSEDSCHED_HOST_DEVICE bool plateau_is_better(int mode, double threshold, double a, double best) {
  switch (static_cast<PlateauMode>(mode)) {
    case PlateauMode::MIN_REL:
      return a < best * (1.0 - threshold);
    case PlateauMode::MIN_ABS:
      return a < best - threshold;
    case PlateauMode::MAX_REL:
      return a > best * (threshold + 1.0);
    default:
      return a > best + threshold;
  }
}

// One step of group g's plateau given the metric m, in place (plateau.plateau_update, torch's order):
//   if is_better(m, BEST): BEST = m; BAD_EPOCHS = 0    else: BAD_EPOCHS += 1
//   if COOLDOWN_LEFT > 0:  COOLDOWN_LEFT -= 1; BAD_EPOCHS = 0
//   if BAD_EPOCHS > PATIENCE:
//     x = VALUE * FACTOR; new = MIN > x ? MIN : x; if VALUE - new > EPS: VALUE = new
//     COOLDOWN_LEFT = COOLDOWN; BAD_EPOCHS = 0
FUSEDSCHED_HOST_DEVICE void plateau_update(double* plateau, int64_t num_groups, int64_t g, double m) {
  double& value = plateau_at(plateau, num_groups, PlateauColumn::VALUE, g);
  double& best = plateau_at(plateau, num_groups, PlateauColumn::BEST, g);
  double& bad_epochs = plateau_at(plateau, num_groups, PlateauColumn::BAD_EPOCHS, g);
  double& cooldown_left = plateau_at(plateau, num_groups, PlateauColumn::COOLDOWN_LEFT, g);
  const int mode = static_cast<int>(plateau_at(plateau, num_groups, PlateauColumn::MODE, g));
  if (plateau_is_better(mode, plateau_at(plateau, num_groups, PlateauColumn::THRESHOLD, g), m, best)) {
    best = m;
    bad_epochs = 0.0;
  } else {
    bad_epochs += 1.0;
  }
  if (cooldown_left > 0) {
    cooldown_left -= 1.0;
    bad_epochs = 0.0;
  }
  if (bad_epochs > plateau_at(plateau, num_groups, PlateauColumn::PATIENCE, g)) {
    const double x = value * plateau_at(plateau, num_groups, PlateauColumn::FACTOR, g);
    const double lowest = plateau_at(plateau, num_groups, PlateauColumn::MIN, g);
    const double next = lowest > x ? lowest : x;  // Python's max(x, MIN), NaN included
    if (value - next > plateau_at(plateau, num_groups, PlateauColumn::EPS, g)) {
      value = next;
    }
    cooldown_left = plateau_at(plateau, num_groups, PlateauColumn::COOLDOWN, g);
    bad_epochs = 0.0;
  }
}

// max / min that propagate NaN like torch.maximum / torch.minimum.
FUSEDSCHED_HOST_DEVICE double nan_max(double a, double b) {
  return (a > b || a != a) ? a : b;
}
FUSEDSCHED_HOST_DEVICE double nan_min(double a, double b) {
  return (a < b || a != a) ? a : b;
}

// base ** n for an integer n >= 0, by squaring (kinds.cosine.int_power, the same multiplications):
// exact in float64 for integer bases while the result is below 2**53.
FUSEDSCHED_HOST_DEVICE double int_power(double base, int64_t n) {
  double result = 1.0;
  for (; n > 0; n >>= 1) {
    if (n & 1) {
      result *= base;
    }
    base *= base;
  }
  return result;
}

// floor(x) for 0 <= x < 2**63 (what every floor below takes): a conversion, no libm call.
FUSEDSCHED_HOST_DEVICE double floor_nonnegative(double x) {
  return static_cast<double>(static_cast<int64_t>(x));
}

// COSINE_RESTARTS's cycle lookup for cycles span * mult**n long: the cycle index n holding step u,
// the step t within it and its length. Closed form: an estimate from log, then corrected exactly.
// Cycle n starts at span * ((mult**n - 1) / (mult - 1)): the quotient is a whole number, so every
// value stays exact up to 2**53.
struct Cycle {
  double n, t, length;
};

FUSEDSCHED_HOST_DEVICE Cycle restart_cycle(double u, double span, double mult) {
  if (mult == 1.0) {
    const double n = floor_nonnegative(u / span);
    return {n, u - n * span, span};
  }
  const double estimate = log(u * (mult - 1) / span + 1) / log(mult);
  int64_t n = estimate >= 0 ? static_cast<int64_t>(estimate) : 0;
  double power = int_power(mult, n);
  if (span * ((power - 1) / (mult - 1)) > u) {
    n -= 1;
    power /= mult;
  }
  if (span * ((power * mult - 1) / (mult - 1)) <= u) {
    n += 1;
    power *= mult;
  }
  return {static_cast<double>(n), u - span * ((power - 1) / (mult - 1)), span * power};
}

// Segment k's float64 value at step s, with u = (s - shift) - origin and span = end - origin:
//   CONSTANT:        v0
//   LINEAR:          clamp(v0 + ((v1 - v0) / span) * u, min(v0, v1), max(v0, v1))
//   COSINE:          v1 + (v0 - v1) * 0.5 * (1 + cos(p * u / span)), u first reduced to u % q when q > 0;
//                    w != 0 (timm's k-decay): p * pow(u, w) / pow(span, w) for p * u / span
//   EXPONENTIAL:     e = u / span (floored when q != 0); x = v0 * pow(p, e); p < 1 ? max(x, v1) : min(x, v1)
//   POWER:           v1 + (v0 - v1) * pow(1 - u / span, p); w != 0: pow(u, w) / pow(span, w) for u / span
//   INV_SQRT:        v0 * (1 / sqrt(u / span))
//   ONE_MINUS_SQRT:  v1 + (v0 - v1) * (1 - sqrt(u / span))
//   COSINE_RESTARTS: (n, t, T) = restart_cycle(u, span, q); v1 + (v0 * w**n - v1) * 0.5 * (1 + cos(p * t / T))
//                    (w**n by squaring: int_power)
//   COSINE_CYCLES:   x = q * (u / span); v1 + (v0 - v1) * 0.5 * (1 + cos(p * (x - floor(x))))
//   LOG:             v0 + (v1 - v0) * (p * log(u + 1))   (p = 1.0 / log(N), computed on the host)
//   CYCLIC:          x = u / span; c = floor(1 + x); t = 1.0 + x - c; f = t <= p ? t / p : (t - 1) / (p - 1);
//                    v0 + ((v1 - v0) * f) * pow(w, q != 0 ? u : c - 1)
//   PLATEAU:         plateau[VALUE, g] (the state, already updated for this step), v0 without it (nullptr)
//   TANH:            x = u / span; v1 + 0.5 * (v0 - v1) * (1 - tanh(p * (1.0 - x) + q * x))
//   EXP_ANNEAL:      x = u / span; v1 + ((2.0 * pow(0.5, x)) - 1.0) * (v0 - v1)   (Megatron's exponential WSD anneal)
FUSEDSCHED_HOST_DEVICE double segment_value(
    const double* table, int64_t num_groups, int64_t k, int64_t g, double s, double* plateau = nullptr) {
  const int shape = static_cast<int>(table_at(table, num_groups, k, Column::SHAPE, g));
  const double v0 = table_at(table, num_groups, k, Column::V0, g);
  if (shape == static_cast<int>(Shape::CONSTANT)) {
    return v0;
  }
  const double origin = table_at(table, num_groups, k, Column::ORIGIN, g);
  const double u = (s - table_at(table, num_groups, k, Column::SHIFT, g)) - origin;
  const double span = table_at(table, num_groups, k, Column::END, g) - origin;
  const double v1 = table_at(table, num_groups, k, Column::V1, g);
  const double p = table_at(table, num_groups, k, Column::P, g);
  switch (static_cast<Shape>(shape)) {
    case Shape::LINEAR: {
      const double linear = v0 + ((v1 - v0) / span) * u;
      return nan_min(nan_max(linear, nan_min(v0, v1)), nan_max(v0, v1));
    }
    case Shape::COSINE: {
      const double period = table_at(table, num_groups, k, Column::Q, g);
      const double reduced = period > 0 ? u - period * floor_nonnegative(u / period) : u;
      const double kd = table_at(table, num_groups, k, Column::W, g);  // k-decay
      const double angle = kd != 0 ? p * pow(reduced, kd) / pow(span, kd) : p * reduced / span;
      return v1 + (v0 - v1) * 0.5 * (1 + cos(angle));
    }
    case Shape::EXPONENTIAL: {
      double e = u / span;
      if (table_at(table, num_groups, k, Column::Q, g) != 0) {
        e = floor_nonnegative(e);
      }
      const double x = v0 * pow(p, e);
      return p < 1 ? nan_max(x, v1) : nan_min(x, v1);
    }
    case Shape::POWER: {
      const double kd = table_at(table, num_groups, k, Column::W, g);  // k-decay
      const double x = kd != 0 ? pow(u, kd) / pow(span, kd) : u / span;
      return v1 + (v0 - v1) * pow(1 - x, p);
    }
    case Shape::INV_SQRT:
      return v0 * (1 / sqrt(u / span));
    case Shape::ONE_MINUS_SQRT:
      return v1 + (v0 - v1) * (1 - sqrt(u / span));
    case Shape::COSINE_RESTARTS: {
      const Cycle c = restart_cycle(u, span, table_at(table, num_groups, k, Column::Q, g));
      const double peak = v0 * int_power(table_at(table, num_groups, k, Column::W, g), static_cast<int64_t>(c.n));
      return v1 + (peak - v1) * 0.5 * (1 + cos(p * c.t / c.length));
    }
    case Shape::COSINE_CYCLES: {
      const double x = table_at(table, num_groups, k, Column::Q, g) * (u / span);
      return v1 + (v0 - v1) * 0.5 * (1 + cos(p * (x - floor_nonnegative(x))));
    }
    case Shape::LOG:
      return v0 + (v1 - v0) * (p * log(u + 1));
    case Shape::CYCLIC: {
      const double x = u / span;
      const double cycle = floor_nonnegative(1 + x);
      const double t = 1.0 + x - cycle;
      const double factor = t <= p ? t / p : (t - 1) / (p - 1);
      const double e = table_at(table, num_groups, k, Column::Q, g) != 0 ? u : cycle - 1;
      return v0 + ((v1 - v0) * factor) * pow(table_at(table, num_groups, k, Column::W, g), e);
    }
    case Shape::PLATEAU:
      return plateau != nullptr ? plateau_at(plateau, num_groups, PlateauColumn::VALUE, g) : v0;
    case Shape::TANH: {
      const double x = u / span;
      const double q = table_at(table, num_groups, k, Column::Q, g);
      return v1 + 0.5 * (v0 - v1) * (1 - tanh(p * (1.0 - x) + q * x));
    }
    case Shape::EXP_ANNEAL:
      return v1 + ((2.0 * pow(0.5, u / span)) - 1.0) * (v0 - v1);
    default:
      return v0;
  }
}

// Group g's float64 learning rate at step s (a negative step counts as 0, like evaluate_table):
// the product of its active segments' values (START <= s < STOP), in table order. A plain
// schedule (FACTORS == 1) has one active segment at every step, each stopping where the next
// starts: the last with START <= s, found from START alone. A product multiplies one per factor,
// starting from 1.0 (1.0 * value is exact).
//
// `plateau` (nullptr: none) is the plateau state: a PLATEAU segment's value is its group's VALUE
// there. `metric` (nullptr: no update) is the step's metric: when the active segment (or one of a
// product's active segments; at most one is a PLATEAU) is a PLATEAU, plateau_update runs on group
// g's column first. Only group g's column is read or written: one thread per group is race-free.
FUSEDSCHED_HOST_DEVICE bool is_plateau(const double* table, int64_t num_groups, int64_t k, int64_t g) {
  return static_cast<int>(table_at(table, num_groups, k, Column::SHAPE, g)) == static_cast<int>(Shape::PLATEAU);
}

FUSEDSCHED_HOST_DEVICE double evaluate_group(
    const double* table, int64_t num_segments, int64_t num_groups, int64_t g, double s,
    double* plateau = nullptr, const double* metric = nullptr) {
  s = s > 0 ? s : 0.0;
  const bool update = plateau != nullptr && metric != nullptr;
  if (table_at(table, num_groups, 0, Column::FACTORS, g) == 1.0) {
    int64_t k = 0;
    for (int64_t j = 1; j < num_segments; ++j) {
      if (table_at(table, num_groups, j, Column::START, g) <= s) {
        k = j;
      }
    }
    if (update && is_plateau(table, num_groups, k, g)) {
      plateau_update(plateau, num_groups, g, *metric);
    }
    return segment_value(table, num_groups, k, g, s, plateau);
  }
  double lr = 1.0;
  bool updated = false;
  for (int64_t k = 0; k < num_segments; ++k) {
    if (table_at(table, num_groups, k, Column::START, g) <= s && s < table_at(table, num_groups, k, Column::STOP, g)) {
      if (update && !updated && is_plateau(table, num_groups, k, g)) {
        plateau_update(plateau, num_groups, g, *metric);
        updated = true;
      }
      lr *= segment_value(table, num_groups, k, g, s, plateau);
    }
  }
  return lr;
}

}  // namespace fusedsched
