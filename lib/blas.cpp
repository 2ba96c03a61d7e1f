#include <xtgrad/lib/blas.hpp>

#include <cblas.h>
#include <fmt/core.h>

#include <xtgrad/lib/error.hpp>

namespace xtgrad {

namespace {

std::string dims(std::size_t r, std::size_t c, bool t) {
    return fmt::format("({} x {}){}", r, c, t ? "^T" : "");
}

}  // namespace

void gemm(const char* who, ConstMat A, bool transA, ConstMat B, bool transB, Mat C, float alpha,
          float beta) {
    const std::size_t m = transA ? A.cols : A.rows;
    const std::size_t k = transA ? A.rows : A.cols;
    const std::size_t kb = transB ? B.cols : B.rows;
    const std::size_t n = transB ? B.rows : B.cols;
    if (k != kb || C.rows != m || C.cols != n) {
        throw ShapeError(fmt::format("{}: cannot multiply {} by {} into {}", who,
                                     dims(A.rows, A.cols, transA), dims(B.rows, B.cols, transB),
                                     dims(C.rows, C.cols, false)));
    }
    if (m == 0 || n == 0) return;
    if (k == 0) {  // empty inner dimension: C = beta * C
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                float& c = C.data[i * C.ld + j];
                c = beta == 0.0f ? 0.0f : beta * c;
            }
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, A.data,
                static_cast<int>(A.ld), B.data, static_cast<int>(B.ld), beta, C.data,
                static_cast<int>(C.ld));
}

void set_blas_threads(int n) {
    if (n < 1) throw ConfigError(fmt::format("BLAS thread count must be >= 1 (got {})", n));
    openblas_set_num_threads(n);
}

int blas_threads() { return openblas_get_num_threads(); }

}  // namespace xtgrad
