// The matrix product of xtgrad: one shape-checked entry point, run by OpenBLAS's sgemm or by oneDNN's matmul (built
// with -Ddnnl), in fp32 or with bf16 operands and fp32 accumulation.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <xtgrad/lib/array.hpp>
#include <xtgrad/lib/bf16.hpp>

namespace xtgrad {

// A read-only window onto row-major float data: rows x cols, rows ld floats apart.
struct ConstMat {
    const float* data;
    std::size_t rows, cols, ld;
};

// A writable window onto row-major float data: rows x cols, rows ld floats apart.
struct Mat {
    float* data;
    std::size_t rows, cols, ld;
};

// Whole-array windows.
inline ConstMat cmat(const Array& a) { return {a.data(), a.shape()[0], a.shape()[1], a.shape()[1]}; }
inline Mat mat(Array& a) { return {a.data(), a.shape()[0], a.shape()[1], a.shape()[1]}; }

// Rows [r0, r1) of an array as a window (no copy).
inline ConstMat crows(const Array& a, std::size_t r0, std::size_t r1) {
    return {a.data() + r0 * a.shape()[1], r1 - r0, a.shape()[1], a.shape()[1]};
}

// C = alpha * op(A) op(B) + beta * C, op(X) = X or X^T. No copies, no allocations; C is never resized.
// Throws ShapeError naming `who` and the three shapes when they do not fit.
void gemm(const char* who, ConstMat A, bool transA, ConstMat B, bool transB, Mat C, float alpha,
          float beta);

// The same on whole arrays.
inline void gemm(const char* who, const Array& A, bool transA, const Array& B, bool transB, Array& C,
                 float alpha = 1.0f, float beta = 0.0f) {
    gemm(who, cmat(A), transA, cmat(B), transB, mat(C), alpha, beta);
}

// ---- bf16 operands

// How the operands of a matrix product are rounded: fp32, or bf16 (products and sums stay fp32).
enum class Precision : std::uint8_t { fp32, bf16 };

// "fp32" or "bf16".
const char* precision_name(Precision p);

// A read-only window onto row-major bf16 data: rows x cols, rows ld elements apart.
struct ConstMat16 {
    const bf16* data;
    std::size_t rows, cols, ld;
};

// C = alpha * op(A) op(B) + beta * C with bf16 operands, every product and sum in fp32, C fp32. With oneDNN on a CPU
// with AVX512_BF16 or AMX it runs on the bf16 instructions; otherwise the operands are widened to fp32 (exactly)
// and multiplied by sgemm: the same numbers up to summation order, at no gain in speed (see bf16_native()).
// Throws ShapeError like the fp32 product.
void gemm(const char* who, ConstMat16 A, bool transA, ConstMat16 B, bool transB, Mat C, float alpha, float beta);

// ---- backends

// Which library runs the matrix products (process-wide). automatic: oneDNN for bf16 products and for the fp32 shapes
// it runs faster (see docs/performance.md), OpenBLAS for the rest; without oneDNN, OpenBLAS for everything.
enum class GemmBackend : std::uint8_t { automatic, openblas, onednn };

// Chooses the backend for every later product (benchmarks and tests compare them); onednn throws ConfigError when
// xtgrad was built without oneDNN.
void set_gemm_backend(GemmBackend b);
GemmBackend gemm_backend();

// Whether xtgrad was built with oneDNN (-Ddnnl=enabled, or auto with libdnnl-dev installed).
bool onednn_built();
// Whether bf16 products run on native bf16 instructions here: oneDNN built and the CPU has AVX512_BF16 or AMX (as
// oneDNN sees it: ONEDNN_MAX_CPU_ISA may lower it). Otherwise bf16 products are emulated and slower than fp32.
bool bf16_native();
// One line naming the backends and the instruction set oneDNN dispatches to, for logs and benchmarks.
std::string gemm_backend_info();

// One matrix product as gemm ran it (after its shape check), for benchmarks that time a model's products alone.
struct GemmCall {
    std::size_t m, n, k;  // C is m x n, the inner dimension k
    bool transA, transB;
    Precision precision;
    float beta;
};
// Starts (a vector to append to) or stops (null) recording every product the calling thread runs through gemm.
void record_gemm_calls(std::vector<GemmCall>* calls);

// Sets how many threads the products use (OpenBLAS, and oneDNN's OpenMP pool when built with it) (n >= 1).
void set_blas_threads(int n);

// How many threads OpenBLAS uses now.
int blas_threads();

// With oneDNN, whose OpenMP threads spin after each product and so take a core from the OpenBLAS products and the
// element-wise passes that follow (the bf16 adaptive-softmax model trained at 0.48x its fp32 speed, 1.19x with
// passive threads): if OMP_WAIT_POLICY is unset, sets it to passive and re-executes the program with the same
// argv (OpenMP reads it only at start-up), after flushing stdout and stderr. Returns when nothing is to be done
// (no oneDNN, the variable set, already re-executed, argv not the process's own command line) or the exec failed.
// Call it first thing in main; run_lm does.
void prefer_passive_openmp(int argc, char** argv);

}  // namespace xtgrad
