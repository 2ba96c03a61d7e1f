// The ops added for published cells (row reductions, LayerNorm, masks, attention products, borrowed constants)
// allocate nothing in a steady-state step, like the rest of the tape: count every operator new.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <xtgrad/layers/layer_norm.hpp>
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
void* operator new(std::size_t n, std::align_val_t a) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    const std::size_t al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
// the nothrow forms too (std::stable_sort's buffer uses them): every allocation pairs with the free below
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    const std::size_t al = static_cast<std::size_t>(a);
    return std::aligned_alloc(al, (n + al - 1) / al * al);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept { return operator new(n, a, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace xtgrad;

TEST_CASE("a layer-normalised, attending, masked recurrence allocates nothing in steady state") {
    constexpr std::size_t T = 4, B = 3, H = 5, K = 2;
    Rng rng(7);
    Parameter W("W", Array({H, 4 * H})), U("U", Array({4 * H, H}));
    for (Parameter* p : {&W, &U}) fill_uniform(p->value, rng, -0.5f, 0.5f);
    LayerNorm ln_h("ln_h", 4 * H), ln_c("ln_c", H);
    Array x({T * B, H}), h0({B, H}, 0.1f), lengths_mask({T * B, 1}, 1.0f), zeros({B, K * H}, 0.0f);
    fill_uniform(x, rng, -1.0f, 1.0f);
    lengths_mask(T * B - 1, 0) = 0.0f;  // one padded step
    Tape tape;
    std::vector<Var> parts(2);  // concat_cols takes a vector: reuse one (a braced list would allocate)
    auto step = [&] {
        tape.clear();
        Var xs = tape.borrow(x), h = tape.borrow(h0), c = tape.borrow(h0), mem = tape.borrow(zeros);
        Var loss = tape.constant({1, 1}, 0.0f);
        for (std::size_t s = 0; s < T; ++s) {
            Var gates = matmul(rows(xs, s * B, (s + 1) * B), tape.param(W)) + ln_h(matmul_t(h, tape.param(U)));
            Var i = sigmoid(cols(gates, 0, H)), f = sigmoid(cols(gates, H, 2 * H));
            Var g = tanh(cols(gates, 2 * H, 3 * H)), o = sigmoid(cols(gates, 3 * H, 4 * H));
            Var m = rows(tape.borrow(lengths_mask), s * B, (s + 1) * B);
            Var c_new = f * c + i * g;
            c = where(m, c_new, c);
            Var h_new = o * tanh(ln_c(c));
            Var ctx = block_mix(softmax(block_dot(h_new, mem)), mem);  // attend over the last K states
            h = where(m, h_new + ctx, h);
            parts[0] = cols(mem, H, K * H);
            parts[1] = h;
            mem = concat_cols(parts);
            loss = loss + masked_mean(pow(h, 2.0f) / 2.0f, m) + sum(max(h, 1)) + mean(sum(transpose(h), 0));
        }
        tape.backward(loss);
    };
    for (int k = 0; k < 3; ++k) step();  // warm-up: pools and buffers reach their sizes
    const long before = g_allocs.load();
    for (int k = 0; k < 3; ++k) step();
    CHECK(g_allocs.load() - before == 0);
    CHECK(tape.stacking_stats().gemms == 2);  // W (matmul, right operand) and U (matmul_t): one sgemm each
    CHECK(tape.stacking_stats().products == 2 * T);
}
