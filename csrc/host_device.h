// FUSEDSCHED_HOST_DEVICE: a function the CPU kernels and the CUDA kernels both call (inline on the
// host; __host__ __device__ __forceinline__ under nvcc).
#pragma once

#ifdef __CUDACC__
#define FUSEDSCHED_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FUSEDSCHED_HOST_DEVICE inline
#endif
