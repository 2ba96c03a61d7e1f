// Matrix product through the tape vs a direct cblas_sgemm call, on LSTM-sized shapes, interleaved in one run.
// Prints GFLOP/s for each and the ratio direct_time / tape_time (1.0: the tape adds nothing).
#include <algorithm>
#include <chrono>
#include <vector>

#include <cblas.h>
#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::max(3, std::atoi(argv[1])) : 30;
    fmt::print("OpenBLAS threads: {}\n", blas_threads());
    fmt::print("{:>22} {:>12} {:>12} {:>8}\n", "shape (MxK by KxN)", "sgemm GF/s", "tape GF/s", "ratio");
    const std::size_t shapes[][3] = {{700, 650, 2600}, {20, 650, 2600}, {700, 200, 800}, {20, 200, 800}};
    for (const auto& s : shapes) {
        const std::size_t M = s[0], K = s[1], N = s[2];
        Rng rng(1);
        Parameter A("A", Array({M, K})), B("B", Array({K, N}));
        fill_uniform(A.value, rng, -1, 1);
        fill_uniform(B.value, rng, -1, 1);
        Array C({M, N});
        Tape tape;
        std::vector<double> direct, taped;
        for (int r = 0; r < reps + 3; ++r) {  // interleaved; the first 3 are warm-up
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(M), static_cast<int>(N),
                        static_cast<int>(K), 1.0f, A.value.data(), static_cast<int>(K), B.value.data(),
                        static_cast<int>(N), 0.0f, C.data(), static_cast<int>(N));
            double t1 = now();
            tape.clear();
            Var y = matmul(tape.param(A), tape.param(B));
            double t2 = now();
            if (y.value()(0, 0) != C(0, 0)) fmt::print("mismatch!\n");
            if (r >= 3) {
                direct.push_back(t1 - t0);
                taped.push_back(t2 - t1);
            }
        }
        const double flop = 2.0 * M * K * N;
        const double td = median(direct), tt = median(taped);
        fmt::print("{:>22} {:>12.1f} {:>12.1f} {:>8.3f}\n", fmt::format("{}x{} by {}x{}", M, K, K, N), flop / td * 1e-9,
                   flop / tt * 1e-9, td / tt);
    }
    return 0;
}
