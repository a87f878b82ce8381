// fusedsched::graphsafe_adam_ and fusedsched::graphsafe_sgd_ on CUDA (the schemas are declared in
// ../graphsafe_adam.cpp and ../graphsafe_sgd.cpp, beside their CPU kernels: this kernel's twin).
//
// Torch's multi_tensor_apply pattern: the tensors of a call are cut into chunks of kChunk elements,
// and one launch covers many chunks of many tensors (every group's: each tensor carries its own
// hyperparameters' addresses), its metadata in the kernel's parameters (tensor addresses, sizes,
// each block's tensor and chunk; 32 KB with CUDA 13 as torch's own, else 4 KB). So a call makes
// ceil(chunks / kMaxBlocks) launches, or more when more tensors than a launch holds, whatever the
// groups; nothing is allocated and nothing is read on the host, and a CUDA graph captures the
// launches with their parameters. Each block reads its group's hyperparameters, grad_scale and
// found_inf from device memory, computes the numbers as the CPU twin does (../graphsafe_math.h),
// and updates each element of its chunk once: read p, g, m, v (vmax) and write p, m, v (vmax) for
// Adam; read p, g (b) and write p (b) for SGD. A second, one-block launch then counts the step
// (Adam: steps += 1) or marks the momentum buffers started (SGD: where momentum != 0), after every
// block has read them; with found_inf nonzero every launch returns at once: nothing changes.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>

#include "../graphsafe.h"
#include "../graphsafe_math.h"

namespace fusedsched {
namespace {

using graphsafe::load_scalar;
using graphsafe::scalar_code;

constexpr int kThreads = 512;
constexpr int kILP = 4;
constexpr int64_t kChunk = 65536;

#if defined(CUDART_VERSION) && CUDART_VERSION >= 13000
constexpr int kParamBytes = 32764;  // CUDA 12.1+ on sm_70+; torch's multi_tensor_apply takes it from CUDA 13
constexpr int kMaxBlocks = 2240;
using BlockTensor = uint16_t;
#else
constexpr int kParamBytes = 4096;
constexpr int kMaxBlocks = 320;
using BlockTensor = uint8_t;
#endif
constexpr int kOtherParamBytes = 128;  // the kernels' other parameters (Amp, flags), with room

// Per launch: Depth tensor lists (their chunk's addresses), Hypers hyperparameters per tensor
// (address and dtype code), an auxiliary 0-dim tensor per tensor (Adam's float step, SGD's bool
// started flag), and each block's tensor and chunk.
template <int Depth, int Hypers>
struct Chunks {
  static constexpr int kPerTensor = Depth * 8 + 8 + 8 + Hypers * 9;
  static constexpr int kTensors =
      (kParamBytes - kOtherParamBytes - kMaxBlocks * static_cast<int>(sizeof(BlockTensor) + 4)) / kPerTensor;
  void* data[Depth][kTensors];
  int64_t numel[kTensors];
  void* aux[kTensors];
  const void* hyper[Hypers][kTensors];
  uint8_t code[Hypers][kTensors];
  BlockTensor block_tensor[kMaxBlocks];
  int32_t block_chunk[kMaxBlocks];
};

using AdamChunks = Chunks<5, 5>;  // params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs; lr, beta1, beta2, wd, eps
using SgdChunks = Chunks<3, 4>;   // params, grads, momentum_buffers; lr, momentum, dampening, weight_decay
static_assert(sizeof(AdamChunks) + kOtherParamBytes <= kParamBytes, "AdamChunks exceeds the kernel parameter space");
static_assert(sizeof(SgdChunks) + kOtherParamBytes <= kParamBytes, "SgdChunks exceeds the kernel parameter space");
static_assert(AdamChunks::kTensors - 1 <= static_cast<int>(static_cast<BlockTensor>(-1)), "block_tensor too narrow");
static_assert(SgdChunks::kTensors - 1 <= static_cast<int>(static_cast<BlockTensor>(-1)), "block_tensor too narrow");

// The step's own tensors after the chunks: the 0-dim auxiliaries to count or mark, with SGD's
// momentum (whose value says whether its buffer starts).
struct Counts {
  static constexpr int kTensors = (kParamBytes - kOtherParamBytes - 8) / 17;
  void* aux[kTensors];
  const void* momentum[kTensors];
  uint8_t code[kTensors];
  int32_t count;
};
static_assert(sizeof(Counts) + kOtherParamBytes <= kParamBytes, "Counts exceeds the kernel parameter space");

// GradScaler's tensors (nullptr where absent).
struct Amp {
  const void* grad_scale;
  const void* found_inf;
  uint8_t scale_code, inf_code;
};

__device__ __forceinline__ bool skipped(const Amp& amp) {
  return amp.found_inf != nullptr && load_scalar(amp.found_inf, amp.inf_code) != 0;
}

// This block's chunk: its tensor's slot, where the chunk starts in the tensor, how many elements.
struct Block {
  int tensor;
  int64_t start, n;
};

template <int Depth, int Hypers>
__device__ __forceinline__ Block block_of(const Chunks<Depth, Hypers>& c) {
  const int tensor = c.block_tensor[blockIdx.x];
  const int64_t start = static_cast<int64_t>(c.block_chunk[blockIdx.x]) * kChunk;
  const int64_t left = c.numel[tensor] - start;
  return {tensor, start, left < kChunk ? left : kChunk};
}

template <int Depth, int Hypers>
__device__ __forceinline__ double hyper_of(const Chunks<Depth, Hypers>& c, int which, int tensor) {
  return load_scalar(c.hyper[which][tensor], c.code[which][tensor]);
}

// Two blocks of kThreads per SM where the registers allow it (at most 64 a thread), for more
// loads in flight; float64's math needs more.
template <typename T>
constexpr int kMinBlocks = sizeof(T) == 8 ? 1 : 2;

template <typename T>
struct alignas(sizeof(T) * kILP) Pack {
  T v[kILP];
};

template <typename T>
__device__ __forceinline__ bool aligned(const T* p) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kILP) == 0;
}

// Load kILP elements of `src` (or zeros where absent): a packed load at index i (aligned path), else
// the elements base + threadIdx.x + k * blockDim.x below n.
template <typename T, typename M>
__device__ __forceinline__ void load(M (&r)[kILP], const T* src, int64_t i, int64_t base, int64_t n, bool packed) {
  if (src == nullptr) {
#pragma unroll
    for (int k = 0; k < kILP; ++k) r[k] = M(0);
  } else if (packed) {
    const Pack<T> pack = reinterpret_cast<const Pack<T>*>(src)[i];
#pragma unroll
    for (int k = 0; k < kILP; ++k) r[k] = static_cast<M>(pack.v[k]);
  } else {
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t j = base + threadIdx.x + k * blockDim.x;
      r[k] = j < n ? static_cast<M>(src[j]) : M(0);
    }
  }
}

template <typename T, typename M>
__device__ __forceinline__ void store(T* dst, const M (&r)[kILP], int64_t i, int64_t base, int64_t n, bool packed) {
  if (dst == nullptr) return;
  if (packed) {
    Pack<T> pack;
#pragma unroll
    for (int k = 0; k < kILP; ++k) pack.v[k] = static_cast<T>(r[k]);
    reinterpret_cast<Pack<T>*>(dst)[i] = pack;
  } else {
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      const int64_t j = base + threadIdx.x + k * blockDim.x;
      if (j < n) dst[j] = static_cast<T>(r[k]);
    }
  }
}

struct AdamFlags {
  bool amsgrad, maximize, decoupled;
};

template <typename T>
__global__ void __launch_bounds__(kThreads, kMinBlocks<T>) adam_kernel(const AdamChunks chunks, const Amp amp, const AdamFlags flags) {
  using M = at::opmath_type<T>;
  if (skipped(amp)) return;
  const Block block = block_of(chunks);
  const int tensor = block.tensor;
  const int64_t start = block.start, n = block.n;
  const double lr = hyper_of(chunks, 0, tensor), beta1 = hyper_of(chunks, 1, tensor);
  const double beta2 = hyper_of(chunks, 2, tensor);
  const bool scaled = amp.grad_scale != nullptr;
  const graphsafe::AdamNumbers<M> h = graphsafe::adam_numbers<M>(
      lr, beta1, beta2, hyper_of(chunks, 3, tensor), hyper_of(chunks, 4, tensor),
      scaled ? load_scalar(amp.grad_scale, amp.scale_code) : 1.0);
  const float t = *static_cast<const float*>(chunks.aux[tensor]) + 1.0f;  // counted by adam_count_kernel
  const graphsafe::AdamBias bias = graphsafe::adam_bias(lr, beta1, beta2, t);
  const M step_size = static_cast<M>(bias.step_size), bias2 = static_cast<M>(bias.bias2);

  T* p = static_cast<T*>(chunks.data[0][tensor]) + start;
  const T* g = static_cast<const T*>(chunks.data[1][tensor]) + start;
  T* m = static_cast<T*>(chunks.data[2][tensor]) + start;
  T* v = static_cast<T*>(chunks.data[3][tensor]) + start;
  T* vmax = flags.amsgrad ? static_cast<T*>(chunks.data[4][tensor]) + start : nullptr;
  const bool packed = n % kILP == 0 && aligned(p) && aligned(g) && aligned(m) && aligned(v) && aligned(vmax);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * kILP;
  for (int64_t base = 0; base < n; base += stride) {
    const int64_t i = base / kILP + threadIdx.x;  // the pack index (aligned path)
    if (packed && i * kILP >= n) break;
    M rp[kILP], rg[kILP], rm[kILP], rv[kILP], rvmax[kILP];
    load(rp, p, i, base, n, packed);
    load(rg, g, i, base, n, packed);
    load(rm, m, i, base, n, packed);
    load(rv, v, i, base, n, packed);
    load(rvmax, static_cast<const T*>(vmax), i, base, n, packed);
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      graphsafe::adam_update<M>(rp[k], rg[k], rm[k], rv[k], rvmax[k], h, step_size, bias2, scaled, flags.maximize,
                                flags.decoupled, flags.amsgrad, h.low_weight);
    }
    store(p, rp, i, base, n, packed);
    store(m, rm, i, base, n, packed);
    store(v, rv, i, base, n, packed);
    store(vmax, rvmax, i, base, n, packed);
  }
}

struct SgdFlags {
  bool with_buffers, nesterov, maximize;
};

template <typename T>
__global__ void __launch_bounds__(kThreads, kMinBlocks<T>) sgd_kernel(const SgdChunks chunks, const Amp amp, const SgdFlags flags) {
  using M = at::opmath_type<T>;
  if (skipped(amp)) return;
  const Block block = block_of(chunks);
  const int tensor = block.tensor;
  const int64_t start = block.start, n = block.n;
  const bool scaled = amp.grad_scale != nullptr;
  const graphsafe::SgdNumbers<M> h = graphsafe::sgd_numbers<M>(
      hyper_of(chunks, 0, tensor), hyper_of(chunks, 1, tensor), hyper_of(chunks, 2, tensor),
      hyper_of(chunks, 3, tensor), scaled ? load_scalar(amp.grad_scale, amp.scale_code) : 1.0);
  const bool moves = flags.with_buffers && h.nonzero;
  const bool started = moves && *static_cast<const bool*>(chunks.aux[tensor]);  // marked by sgd_start_kernel

  T* p = static_cast<T*>(chunks.data[0][tensor]) + start;
  const T* g = static_cast<const T*>(chunks.data[1][tensor]) + start;
  T* b = moves ? static_cast<T*>(chunks.data[2][tensor]) + start : nullptr;
  const bool packed = n % kILP == 0 && aligned(p) && aligned(g) && aligned(b);
  const int64_t stride = static_cast<int64_t>(blockDim.x) * kILP;
  for (int64_t base = 0; base < n; base += stride) {
    const int64_t i = base / kILP + threadIdx.x;
    if (packed && i * kILP >= n) break;
    M rp[kILP], rg[kILP], rb[kILP];
    load(rp, p, i, base, n, packed);
    load(rg, g, i, base, n, packed);
    load(rb, static_cast<const T*>(b), i, base, n, packed);
#pragma unroll
    for (int k = 0; k < kILP; ++k) {
      graphsafe::sgd_update<M>(rp[k], rg[k], rb[k], h, scaled, flags.maximize, moves, started, flags.nesterov);
    }
    store(p, rp, i, base, n, packed);
    store(b, rb, i, base, n, packed);
  }
}

// After every chunk of the call: Adam's steps += 1.
__global__ void adam_count_kernel(const Counts counts, const Amp amp) {
  if (skipped(amp)) return;
  for (int i = threadIdx.x; i < counts.count; i += blockDim.x) {
    float* step = static_cast<float*>(counts.aux[i]);
    *step = *step + 1.0f;
  }
}

// After every chunk of the call: SGD's buffers have started where the momentum is not 0.
__global__ void sgd_start_kernel(const Counts counts, const Amp amp) {
  if (skipped(amp)) return;
  for (int i = threadIdx.x; i < counts.count; i += blockDim.x) {
    if (load_scalar(counts.momentum[i], counts.code[i]) != 0) *static_cast<bool*>(counts.aux[i]) = true;
  }
}

Amp amp_of(const std::optional<at::Tensor>& grad_scale, const std::optional<at::Tensor>& found_inf) {
  Amp amp{nullptr, nullptr, 0, 0};
  if (grad_scale.has_value()) {
    amp.grad_scale = grad_scale->const_data_ptr();
    amp.scale_code = scalar_code(*grad_scale);
  }
  if (found_inf.has_value()) {
    amp.found_inf = found_inf->const_data_ptr();
    amp.inf_code = scalar_code(*found_inf);
  }
  return amp;
}

// torch's multi_tensor_apply loop: fill(chunks, slot, i) writes tensor i's addresses into `slot`;
// launch(chunks, blocks) runs one launch. A tensor whose chunks do not all fit in one launch
// continues in the next from slot 0.
template <typename C, typename Fill, typename Launch>
void for_each_launch(at::TensorList params, Fill fill, Launch launch) {
  C chunks;
  int slot = 0, blocks = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const int64_t numel = params[i].numel();
    if (numel == 0) continue;
    fill(chunks, slot, i);
    chunks.numel[slot] = numel;
    ++slot;
    const int64_t num_chunks = (numel + kChunk - 1) / kChunk;
    for (int64_t c = 0; c < num_chunks; ++c) {
      chunks.block_tensor[blocks] = static_cast<BlockTensor>(slot - 1);
      chunks.block_chunk[blocks] = static_cast<int32_t>(c);
      ++blocks;
      const bool last_chunk = c == num_chunks - 1;
      if (blocks == kMaxBlocks || (slot == C::kTensors && last_chunk)) {
        launch(chunks, blocks);
        blocks = 0;
        if (last_chunk) {
          slot = 0;
        } else {  // the tensor goes on in the next launch, from slot 0
          fill(chunks, 0, i);
          chunks.numel[0] = numel;
          slot = 1;
        }
      }
    }
  }
  if (blocks > 0) launch(chunks, blocks);
}

// One-block launches over the 0-dim auxiliaries of every parameter, after the chunks.
template <typename Kernel>
void count_launches(at::TensorList aux, at::TensorList momentum, at::IntArrayRef group, const Amp& amp,
                    cudaStream_t stream, Kernel kernel) {
  Counts counts;
  counts.count = 0;
  for (size_t i = 0; i < aux.size(); ++i) {
    counts.aux[counts.count] = aux[i].data_ptr();
    counts.momentum[counts.count] = momentum.empty() ? nullptr : momentum[group[i]].const_data_ptr();
    counts.code[counts.count] = momentum.empty() ? 0 : scalar_code(momentum[group[i]]);
    if (++counts.count == Counts::kTensors || i + 1 == aux.size()) {
      kernel<<<1, 256, 0, stream>>>(counts, amp);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      counts.count = 0;
    }
  }
}

void check_cuda(at::TensorList params, const char* op) {
  TORCH_CHECK(params[0].is_cuda(), op, " (CUDA): the tensors must be CUDA tensors, got ", params[0].device());
}

void graphsafe_adam_cuda(
    at::TensorList params, at::TensorList grads, at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
    at::TensorList max_exp_avg_sqs, at::TensorList steps, at::TensorList lr, at::TensorList beta1,
    at::TensorList beta2, at::TensorList weight_decay, at::TensorList eps, at::IntArrayRef group, bool amsgrad,
    bool maximize, bool decoupled_weight_decay, const std::optional<at::Tensor>& grad_scale,
    const std::optional<at::Tensor>& found_inf) {
  graphsafe::check_adam_args(
      params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, weight_decay, eps, group, amsgrad,
      grad_scale, found_inf);
  if (params.empty()) return;
  check_cuda(params, "graphsafe_adam_");
  const c10::cuda::CUDAGuard device_guard(params[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const Amp amp = amp_of(grad_scale, found_inf);
  const AdamFlags flags{amsgrad, maximize, decoupled_weight_decay};
  const at::TensorList hyper[5] = {lr, beta1, beta2, weight_decay, eps};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "graphsafe_adam_cuda", [&] {
    for_each_launch<AdamChunks>(
        params,
        [&](AdamChunks& c, int slot, size_t i) {
          c.data[0][slot] = params[i].data_ptr();
          c.data[1][slot] = const_cast<void*>(grads[i].const_data_ptr());
          c.data[2][slot] = exp_avgs[i].data_ptr();
          c.data[3][slot] = exp_avg_sqs[i].data_ptr();
          c.data[4][slot] = amsgrad ? max_exp_avg_sqs[i].data_ptr() : nullptr;
          c.aux[slot] = steps[i].data_ptr();
          for (int k = 0; k < 5; ++k) {
            c.hyper[k][slot] = hyper[k][group[i]].const_data_ptr();
            c.code[k][slot] = scalar_code(hyper[k][group[i]]);
          }
        },
        [&](const AdamChunks& c, int blocks) {
          adam_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(c, amp, flags);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  });
  count_launches(steps, {}, group, amp, stream, adam_count_kernel);
}

void graphsafe_sgd_cuda(
    at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers, at::TensorList momentum_started,
    at::TensorList lr, at::TensorList momentum, at::TensorList dampening, at::TensorList weight_decay,
    at::IntArrayRef group, bool nesterov, bool maximize, const std::optional<at::Tensor>& grad_scale,
    const std::optional<at::Tensor>& found_inf) {
  graphsafe::check_sgd_args(
      params, grads, momentum_buffers, momentum_started, lr, momentum, dampening, weight_decay, group, grad_scale,
      found_inf);
  if (params.empty()) return;
  check_cuda(params, "graphsafe_sgd_");
  const c10::cuda::CUDAGuard device_guard(params[0].device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const Amp amp = amp_of(grad_scale, found_inf);
  const bool with_buffers = !momentum_buffers.empty();
  const SgdFlags flags{with_buffers, nesterov, maximize};
  const at::TensorList hyper[4] = {lr, momentum, dampening, weight_decay};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, params[0].scalar_type(), "graphsafe_sgd_cuda", [&] {
    for_each_launch<SgdChunks>(
        params,
        [&](SgdChunks& c, int slot, size_t i) {
          c.data[0][slot] = params[i].data_ptr();
          c.data[1][slot] = const_cast<void*>(grads[i].const_data_ptr());
          c.data[2][slot] = with_buffers ? momentum_buffers[i].data_ptr() : nullptr;
          c.aux[slot] = with_buffers ? momentum_started[i].data_ptr() : nullptr;
          for (int k = 0; k < 4; ++k) {
            c.hyper[k][slot] = hyper[k][group[i]].const_data_ptr();
            c.code[k][slot] = scalar_code(hyper[k][group[i]]);
          }
        },
        [&](const SgdChunks& c, int blocks) {
          sgd_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(c, amp, flags);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  });
  if (with_buffers) count_launches(momentum_started, momentum, group, amp, stream, sgd_start_kernel);
}

}  // namespace

TORCH_LIBRARY_IMPL(fusedsched, CUDA, m) {
  m.impl("graphsafe_adam_", &graphsafe_adam_cuda);
  m.impl("graphsafe_sgd_", &graphsafe_sgd_cuda);
}

}  // namespace fusedsched
