// The matrix products of the language models, by backend: OpenBLAS sgemm, oneDNN fp32 and oneDNN bf16 (bf16
// operands, fp32 accumulation), through xtgrad::gemm, interleaved in one run. Prints GFLOP/s (median and best of the
// rounds) and the ratios to OpenBLAS: the measurement behind the backend choice of GemmBackend::automatic.
//   ./build/tests/bench/bench_gemm [ROUNDS]
#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/core.h>

#include <xtgrad/lib/blas.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/lib/vmath.hpp>

using namespace xtgrad;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Shape3 {
    const char* what;
    std::size_t M, N, K;
    bool ta, tb;
};

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::max(3, std::atoi(argv[1])) : 15;
    fmt::print("{}\n", gemm_backend_info());
    const Shape3 shapes[] = {
        {"decoder x W^T", 700, 33278, 200, false, true},   {"decoder dx = g W", 700, 200, 33278, false, false},
        {"decoder dW = g^T x", 33278, 200, 700, true, false}, {"input proj x W^T", 700, 800, 200, false, true},
        {"input proj dx", 700, 200, 800, false, false},     {"input proj dW", 800, 200, 700, true, false},
        {"step h W^T", 20, 800, 200, false, true},          {"step dh = g W", 20, 200, 800, false, false},
        {"step dW (one step)", 800, 200, 20, true, false},  {"medium step h W^T", 20, 2600, 650, false, true},
        {"medium step dh", 20, 650, 2600, false, false},    {"medium decoder x W^T", 700, 33278, 650, false, true},
    };
    fmt::print("{:<22} {:>17} {:>10} {:>10} {:>10} {:>8} {:>8}\n", "product", "M x N x K", "OpenBLAS", "oneDNN", "bf16",
               "fp32 x", "bf16 x");
    const bool dnnl = onednn_built();
    for (const Shape3& s : shapes) {
        Rng rng(1);
        const std::size_t ar = s.ta ? s.K : s.M, ac = s.ta ? s.M : s.K, br = s.tb ? s.N : s.K, bc = s.tb ? s.K : s.N;
        Array A({ar, ac}), B({br, bc}), C({s.M, s.N});
        fill_uniform(A, rng, -1, 1);
        fill_uniform(B, rng, -1, 1);
        std::vector<bf16> A16(A.size()), B16(B.size());
        vmath::to_bf16(A.data(), A16.data(), A.size());
        vmath::to_bf16(B.data(), B16.data(), B.size());
        const double flop = 2.0 * s.M * s.N * s.K;
        const int reps = static_cast<int>(std::clamp(2e8 / flop, 1.0, 200.0));
        std::vector<double> t[3];
        for (int r = 0; r < rounds + 1; ++r) {
            for (int b = 0; b < (dnnl ? 3 : 1); ++b) {
                set_gemm_backend(b == 0 ? GemmBackend::openblas : GemmBackend::onednn);
                const double t0 = now();
                for (int i = 0; i < reps; ++i) {
                    if (b < 2)
                        gemm("bench", cmat(A), s.ta, cmat(B), s.tb, mat(C), 1.0f, 0.0f);
                    else
                        gemm("bench", ConstMat16{A16.data(), ar, ac, ac}, s.ta, ConstMat16{B16.data(), br, bc, bc}, s.tb,
                             mat(C), 1.0f, 0.0f);
                }
                if (r > 0) t[b].push_back((now() - t0) / reps);  // the first round warms up (and creates primitives)
            }
        }
        double med[3] = {0, 0, 0}, best[3] = {0, 0, 0};
        for (int b = 0; b < 3; ++b) {
            if (t[b].empty()) continue;
            std::sort(t[b].begin(), t[b].end());
            med[b] = flop / t[b][t[b].size() / 2] * 1e-9;
            best[b] = flop / t[b][0] * 1e-9;
        }
        fmt::print("{:<22} {:>17} {:>10} {:>10} {:>10} {:>7.2f}x {:>7.2f}x\n", s.what,
                   fmt::format("{}x{}x{}", s.M, s.N, s.K), fmt::format("{:.0f}/{:.0f}", med[0], best[0]),
                   fmt::format("{:.0f}/{:.0f}", med[1], best[1]), fmt::format("{:.0f}/{:.0f}", med[2], best[2]),
                   med[0] > 0 ? med[1] / med[0] : 0.0, med[0] > 0 ? med[2] / med[0] : 0.0);
    }
    set_gemm_backend(GemmBackend::automatic);
    fmt::print("GFLOP/s as median/best of {} rounds; ratios of medians to OpenBLAS\n", rounds);
    return 0;
}
