// LayerNorm (composed from tape ops) against the matrix product it normalises, per recurrent step, in one run:
// forward + backward of LayerNorm on (B x 4H) vs the recurrent projection affine((B x H), (4H x H)) of a
// layer-normalised LSTM (B = 20, H = 200: the word LM's size), plus the LN on c (B x H) and the per-window LN on
// the input projection (T*B x 4H). Prints medians of interleaved repetitions, the ratio to the product, a per-op
// breakdown, and the allocations of a steady-state step (operator new is counted here). Then a whole word-LM
// training step (V = 33278 as WikiText-2, E = H = 200, B = 20, T = 35; forward + backward, no optimiser), with an
// LSTM written in tape ops against the same with LayerNorm on the input projection, the recurrent projection and c
// (Ba et al. 2016): the tokens/s ratio a layer-normalised LSTM can reach.
//   ./build/tests/bench/bench_layer_norm [reps] [lm_reps]
#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdlib>
#include <ctime>
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
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {  // std::stable_sort's buffer: pairs with free
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

using namespace xtgrad;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// CPU time of the calling thread: with one OpenBLAS thread, all of a step's work, and little disturbed by other
// processes on a loaded machine (wall time is not).
double cpu_now() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
    if (v.empty()) return std::nan("");
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

// A word LM written directly in tape ops: embedding, one LSTM layer (optionally layer-normalised), decoder, loss.
struct WordLM {
    static constexpr std::size_t V = 33278, E = 200, H = 200, B = 20, T = 35;
    Rng rng{5};
    Parameter emb{"emb", random_array({V, E}, rng)}, w_ih{"w_ih", random_array({4 * H, E}, rng)},
        w_hh{"w_hh", random_array({4 * H, H}, rng)}, b_ih{"b_ih", random_array({1, 4 * H}, rng)},
        b_hh{"b_hh", random_array({1, 4 * H}, rng)}, dec{"dec", random_array({V, H}, rng)},
        dec_b{"dec_b", random_array({1, V}, rng)};
    LayerNorm ln_x{"ln_x", 4 * H}, ln_h{"ln_h", 4 * H}, ln_c{"ln_c", H};
    Ids ids = Ids(T * B), targets = Ids(T * B);
    Array h0 = Array({B, H}, 0.0f), c0 = Array({B, H}, 0.0f);
    std::vector<Var> outs = std::vector<Var>(T);
    Tape tapes[2];  // one per variant: one tape alternating two graphs would resize its pooled buffers every step

    WordLM() {
        for (std::size_t k = 0; k < T * B; ++k) {
            ids[k] = static_cast<std::int32_t>(rng.next_u64() % V);
            targets[k] = static_cast<std::int32_t>(rng.next_u64() % V);
        }
        for (Parameter* p : {&emb, &w_ih, &w_hh, &dec}) vmath_scale(p->value, 0.1f);
    }
    static void vmath_scale(Array& a, float c) {
        for (float& v : a) v *= c;
    }
    void step(bool layer_norm) {
        Tape& t = tapes[layer_norm ? 1 : 0];
        t.clear();
        Var x = gather(t.param(emb), ids);
        Var px = layer_norm ? ln_x(matmul_t(x, t.param(w_ih))) : affine(x, t.param(w_ih), t.param(b_ih));
        Var h = t.borrow(h0), c = t.borrow(c0);
        for (std::size_t s = 0; s < T; ++s) {
            Var rec = layer_norm ? ln_h(matmul_t(h, t.param(w_hh))) + t.param(b_hh)
                                 : affine(h, t.param(w_hh), t.param(b_hh));
            Var gates = rows(px, s * B, (s + 1) * B) + rec;
            Var i = sigmoid(cols(gates, 0, H)), f = sigmoid(cols(gates, H, 2 * H));
            Var g = tanh(cols(gates, 2 * H, 3 * H)), o = sigmoid(cols(gates, 3 * H, 4 * H));
            c = f * c + i * g;
            h = o * tanh(layer_norm ? ln_c(c) : c);
            outs[s] = h;
        }
        t.backward(cross_entropy(affine(concat_rows(outs), t.param(dec), t.param(dec_b)), targets));
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
    // After a few ms without BLAS (the 700 x 800 LayerNorm), OpenBLAS's worker threads sleep and the next sgemm pays
    // their wake-up (ms on a loaded machine): that case is timed in a loop of its own, after the others.
    Case& product = cases.emplace_back("affine (20x200)(800x200)^T", Shape{B, H}, Shape{B, 4 * H}, rng,
                                       [&](Var h) { return affine(h, h.tape->param(W), h.tape->param(b)); });
    Case& both = cases.emplace_back("affine + LayerNorm", Shape{B, H}, Shape{B, 4 * H}, rng,
                                    [&](Var h) { return ln_h(affine(h, h.tape->param(W), h.tape->param(b))); });
    Case& ln_gates = cases.emplace_back("LayerNorm (20 x 800)", Shape{B, 4 * H}, Shape{B, 4 * H}, rng,
                                        [&](Var v) { return ln_h(v); });
    Case& ln_cell = cases.emplace_back("LayerNorm (20 x 200)", Shape{B, H}, Shape{B, H}, rng,
                                       [&](Var v) { return ln_c(v); });
    Case& ln_window = cases.emplace_back("LayerNorm (700 x 800) / 35", Shape{T * B, 4 * H}, Shape{T * B, 4 * H}, rng,
                                         [&](Var v) { return ln_x(v); });

    for (int r = 0; r < 5; ++r)
        for (Case& c : cases) c.run();  // warm-up: every buffer reaches its size
    const long allocs0 = g_allocs.load();
    for (Case& c : cases) c.run();
    const long steady_allocs = g_allocs.load() - allocs0;
    for (int r = 0; r < reps; ++r)
        for (Case& c : cases)
            if (&c != &ln_window) c.timed();
    for (int r = 0; r < reps / 4 + 1; ++r) ln_window.timed();

    const double t_product = median(product.times);
    fmt::print("{:<30} {:>12} {:>16}\n", "per step", "us", "x the product");
    for (Case& c : cases) {
        const double per_step = median(c.times) / (&c == &ln_window ? static_cast<double>(T) : 1.0);
        fmt::print("{:<30} {:>12.1f} {:>16.3f}\n", c.name, per_step * 1e6, per_step / t_product);
    }
    const double ln_step = median(ln_gates.times) + median(ln_cell.times) + median(ln_window.times) / T;
    fmt::print("LN-LSTM extra LayerNorm work per step (LN_h + LN_c + LN_x / T): {:.1f} us = {:.2f}x the recurrent "
               "product; affine + LN costs {:.2f}x the affine alone\n",
               ln_step * 1e6, ln_step / t_product, median(both.times) / t_product);
    fmt::print("allocations in a steady-state round of all cases: {}\n", steady_allocs);

    // Where the LayerNorm time goes, op by op (profiling adds a clock read per op: totals are a bit higher).
    Case& c = ln_gates;
    c.tape.set_profiling(true);
    for (int r = 0; r < reps; ++r) c.run();
    c.tape.set_profiling(false);
    fmt::print("\nLayerNorm (20 x 800), per op (us per call, forward / backward):\n");
    for (const auto& [key, t] : c.tape.profile()) {
        if (t.calls == 0) continue;
        fmt::print("  {:<32} {:>8.2f} {:>8.2f}\n", key, t.forward_s / t.calls * 1e6, t.backward_s / t.calls * 1e6);
    }

    // A whole word-LM training step, LSTM vs layer-normalised LSTM, interleaved.
    const int lm_reps = argc > 2 ? std::max(3, std::atoi(argv[2])) : 12;
    WordLM lm;
    std::vector<double> plain, normed, plain_cpu, normed_cpu;
    for (int r = 0; r < lm_reps + 2; ++r) {
        const double t0 = now(), c0 = cpu_now();
        lm.step(false);
        const double t1 = now(), c1 = cpu_now();
        lm.step(true);
        const double t2 = now(), c2 = cpu_now();
        if (r >= 2) {
            plain.push_back(t1 - t0);
            normed.push_back(t2 - t1);
            plain_cpu.push_back(c1 - c0);
            normed_cpu.push_back(c2 - c1);
        }
    }
    const double tp = median(plain), tn = median(normed), cp = median(plain_cpu), cn = median(normed_cpu);
    const double tokens = static_cast<double>(WordLM::T * WordLM::B);
    fmt::print("\nword-LM training step (V {}, H {}, B {}, T {}; forward + backward, {} interleaved reps, medians):\n",
               WordLM::V, WordLM::H, WordLM::B, WordLM::T, lm_reps);
    fmt::print("  {:<24} {:>10} {:>10} {:>14}\n", "", "wall ms", "tok/s", "thread CPU ms");
    fmt::print("  {:<24} {:>10.1f} {:>10.0f} {:>14.1f}\n", "LSTM", tp * 1e3, tokens / tp, cp * 1e3);
    fmt::print("  {:<24} {:>10.1f} {:>10.0f} {:>14.1f}\n", "layer-normalised LSTM", tn * 1e3, tokens / tn, cn * 1e3);
    fmt::print("  LN-LSTM tokens/s = {:.3f}x the LSTM's (wall), {:.3f}x (thread CPU time{})\n", tp / tn, cp / cn,
               blas_threads() == 1 ? "" : "; meaningful with OPENBLAS_NUM_THREADS=1");
    return 0;
}
