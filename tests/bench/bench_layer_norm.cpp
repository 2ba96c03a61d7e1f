// LayerNorm (composed from tape ops) against the matrix product it normalises, per recurrent step, in one run:
// forward + backward of LayerNorm on (B x 4H) vs the recurrent projection affine((B x H), (4H x H)) of a
// layer-normalised LSTM (B = 20, H = 200: the word LM's size), plus the LN on c (B x H) and the per-window LN on
// the input projection (T*B x 4H). Prints medians of interleaved repetitions, the ratio to the product, a per-op
// breakdown, and the allocations of a steady-state step (operator new is counted here).
//   ./build/tests/bench/bench_layer_norm [reps]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdlib>
#include <functional>
#include <new>
#include <vector>

#include <fmt/core.h>

#include <xtgrad/layers/layer_norm.hpp>
#include <xtgrad/lib/blas.hpp>
#include <xtgrad/tape/ops.hpp>

namespace {
std::atomic<long> g_allocs{0};
}

void* operator new(std::size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

using namespace xtgrad;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

Array random_array(Shape s, Rng& rng) {
    Array a(s);
    fill_uniform(a, rng, -1.0f, 1.0f);
    return a;
}

// One forward + backward of f on a (rows x cols) input that requires a gradient, with a random seed.
struct Case {
    const char* name;
    Parameter x;
    Array seed;
    Tape tape;
    std::function<Var(Var)> f;
    std::vector<double> times;

    Case(const char* n, Shape in, Shape out, Rng& rng, std::function<Var(Var)> fn)
        : name(n), x("x", random_array(in, rng)), seed(random_array(out, rng)), f(std::move(fn)) {}
    void run() {
        tape.clear();
        Var y = f(tape.param(x));
        tape.backward(y, seed);
    }
    void timed() {
        const double t0 = now();
        run();
        times.push_back(now() - t0);
    }
};

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::max(5, std::atoi(argv[1])) : 400;
    constexpr std::size_t B = 20, H = 200, T = 35;
    Rng rng(1);
    Parameter W("weight_hh", random_array({4 * H, H}, rng)), b("bias_hh", random_array({1, 4 * H}, rng));
    LayerNorm ln_h("ln_h", 4 * H), ln_c("ln_c", H), ln_x("ln_x", 4 * H);
    fmt::print("OpenBLAS threads: {}; {} interleaved repetitions, medians; forward + backward each\n", blas_threads(),
               reps);

    std::deque<Case> cases;  // a Case holds a Tape, which does not move
    cases.emplace_back("affine (20x200)(800x200)^T", Shape{B, H}, Shape{B, 4 * H}, rng,
                       [&](Var h) { return affine(h, h.tape->param(W), h.tape->param(b)); });
    cases.emplace_back("LayerNorm (20 x 800)", Shape{B, 4 * H}, Shape{B, 4 * H}, rng, [&](Var v) { return ln_h(v); });
    cases.emplace_back("LayerNorm (20 x 200)", Shape{B, H}, Shape{B, H}, rng, [&](Var v) { return ln_c(v); });
    cases.emplace_back("LayerNorm (700 x 800) / 35", Shape{T * B, 4 * H}, Shape{T * B, 4 * H}, rng,
                       [&](Var v) { return ln_x(v); });
    cases.emplace_back("affine + LayerNorm", Shape{B, H}, Shape{B, 4 * H}, rng,
                       [&](Var h) { return ln_h(affine(h, h.tape->param(W), h.tape->param(b))); });

    for (int r = 0; r < 5; ++r)
        for (Case& c : cases) c.run();  // warm-up: every buffer reaches its size
    const long allocs0 = g_allocs.load();
    for (Case& c : cases) c.run();
    const long steady_allocs = g_allocs.load() - allocs0;
    for (int r = 0; r < reps; ++r)
        for (Case& c : cases) c.timed();

    const double product = median(cases[0].times);
    fmt::print("{:<30} {:>12} {:>16}\n", "per step", "us", "x the product");
    for (Case& c : cases) {
        const double per_step = median(c.times) / (c.name == cases[3].name ? static_cast<double>(T) : 1.0);
        fmt::print("{:<30} {:>12.1f} {:>16.3f}\n", c.name, per_step * 1e6, per_step / product);
    }
    const double ln_step = median(cases[1].times) + median(cases[2].times) + median(cases[3].times) / T;
    fmt::print("LN-LSTM extra LayerNorm work per step (LN_h + LN_c + LN_x / T): {:.1f} us = {:.2f}x the recurrent "
               "product\n",
               ln_step * 1e6, ln_step / product);
    fmt::print("allocations in a steady-state round of all cases: {}\n", steady_allocs);

    // Where the LayerNorm time goes, op by op (profiling adds a clock read per op: totals are a bit higher).
    Case& c = cases[std::getenv("CASE") ? std::atoi(std::getenv("CASE")) : 1];
    c.tape.set_profiling(true);
    for (int r = 0; r < reps; ++r) c.run();
    c.tape.set_profiling(false);
    fmt::print("\nLayerNorm (20 x 800), per op (us per call, forward / backward):\n");
    for (const auto& [key, t] : c.tape.profile()) {
        if (t.calls == 0) continue;
        fmt::print("  {:<32} {:>8.2f} {:>8.2f}\n", key, t.forward_s / t.calls * 1e6, t.backward_s / t.calls * 1e6);
    }
    return 0;
}
