// Dropout masks: the counter-based masks of fill_dropout_mask (a function of seed, global row and column, so that a
// batch split between processes draws the same masks) against the sequential generator they replaced (one
// xoshiro256** draw per entry from a running Rng), interleaved in one run on LSTM-sized shapes; and the whole
// dropout op (mask, product, backward) through the tape. Prints medians and the ratio old / new (> 1: faster now).
//   ./build/tests/bench/bench_dropout [reps]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include <fmt/core.h>

#include <xtgrad/tape/ops.hpp>

#include "timing.hpp"

using namespace xtgrad;

using bench::median;
using bench::now;

namespace {

// The mask generator dropout used before: 24 bits of one sequential draw per entry.
void sequential_mask(float* d, std::size_t n, float p, Rng& rng) {
    const float keep = 1.0f / (1.0f - p);
    const auto threshold = static_cast<std::uint64_t>(std::ceil(static_cast<double>(p) * 0x1.0p24));
    for (std::size_t k = 0; k < n; ++k) d[k] = (rng.next_u64() >> 40) < threshold ? 0.0f : keep;
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::max(5, std::atoi(argv[1])) : 50;
    fmt::print("{:>14} {:>14} {:>14} {:>7} {:>16}\n", "mask (rows x H)", "sequential ms", "keyed ms", "ratio",
               "dropout op ms");
    const std::size_t shapes[][2] = {{700, 200}, {700, 650}, {20, 650}, {700, 1500}};
    double sum_old = 0.0, sum_new = 0.0;
    for (const auto& s : shapes) {
        const std::size_t R = s[0], C = s[1];
        std::vector<float> m(R * C);
        Rng rng(1);
        Parameter x("x", Array({R, C}, 1.0f));
        Tape tape;
        std::vector<double> old_t, new_t, op_t;
        for (int r = 0; r < reps + 3; ++r) {  // interleaved; the first 3 are warm-up
            double t0 = now();
            sequential_mask(m.data(), m.size(), 0.3f, rng);
            const double t1 = now();
            fill_dropout_mask(m.data(), R, C, 0.3f, MaskKey{rng.next_u64(), 20, 0, 20});
            const double t2 = now();
            tape.clear();
            tape.backward(sum(dropout(tape.param(x), 0.3f, MaskKey{rng.next_u64(), 20, 0, 20})));
            const double t3 = now();
            if (r >= 3) {
                old_t.push_back(t1 - t0);
                new_t.push_back(t2 - t1);
                op_t.push_back(t3 - t2);
            }
        }
        const double o = median(old_t), n = median(new_t);
        sum_old += o;
        sum_new += n;
        fmt::print("{:>8} x {:<4} {:>14.3f} {:>14.3f} {:>6.2f}x {:>16.3f}\n", R, C, o * 1e3, n * 1e3, o / n,
                   median(op_t) * 1e3);
    }
    fmt::print("all shapes: sequential {:.3f} ms, keyed {:.3f} ms: {:.2f}x\n", sum_old * 1e3, sum_new * 1e3,
               sum_old / sum_new);
    return 0;
}
