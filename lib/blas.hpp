// The matrix product of xtgrad: one shape-checked entry point on BLAS sgemm.
#pragma once

#include <cstddef>

#include <xtgrad/lib/array.hpp>

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

// Sets how many threads OpenBLAS uses (n >= 1).
void set_blas_threads(int n);

// How many threads OpenBLAS uses now.
int blas_threads();

}  // namespace xtgrad
