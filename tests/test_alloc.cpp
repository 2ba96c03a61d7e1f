// A steady-state training step through the tape allocates nothing: count every operator new.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <xtgrad/lib/rng.hpp>
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
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace xtgrad;

namespace {

// A small LSTM language model written directly in tape ops: embedding, one LSTM layer over T steps,
// dropout, decoder, cross-entropy, backward, SGD.
struct TinyLM {
    static constexpr std::size_t V = 50, E = 8, H = 12, B = 3, T = 5;
    Rng rng{3};
    Parameter emb{"emb", Array({V, E})}, wih{"wih", Array({4 * H, E})}, whh{"whh", Array({4 * H, H})},
        bias{"b", Array({1, 4 * H})}, dec{"dec", Array({V, H})}, dbias{"db", Array({1, V})};
    Ids ids, targets;
    std::vector<Var> outs;  // reused: clear() keeps its capacity
    Array h0, c0;

    TinyLM() {
        for (Parameter* p : {&emb, &wih, &whh, &bias, &dec, &dbias}) {
            fill_uniform(p->value, rng, -0.1f, 0.1f);
            p->zero_grad();
        }
        h0 = Array({B, H}, 0.0f);
        c0 = Array({B, H}, 0.0f);
        ids.resize(B * T);
        targets.resize(B * T);
    }

    float step(Tape& t, bool train) {
        t.clear();
        for (std::size_t i = 0; i < B * T; ++i) {
            ids[i] = static_cast<std::int32_t>(rng.below(V));
            targets[i] = static_cast<std::int32_t>(rng.below(V));
        }
        Var x = gather(t.param(emb), ids);
        Var xproj = affine(x, t.param(wih), t.param(bias));  // the whole window's input projection
        Var W = t.param(whh);
        Var h = t.constant(h0), c = t.constant(c0);
        outs.clear();
        for (std::size_t s = 0; s < T; ++s) {
            Var g = add(rows(xproj, s * B, (s + 1) * B), matmul_t(h, W));
            Var i = sigmoid(cols(g, 0, H)), f = sigmoid(cols(g, H, 2 * H));
            Var gg = tanh(cols(g, 2 * H, 3 * H)), o = sigmoid(cols(g, 3 * H, 4 * H));
            c = f * c + i * gg;
            h = o * tanh(c);
            outs.push_back(h);
        }
        Var out = concat_rows(outs);
        Var logits = affine(train ? dropout(out, 0.2f, rng) : out, t.param(dec), t.param(dbias));
        Var loss = cross_entropy(logits, targets);
        std::copy(h.value().begin(), h.value().end(), h0.begin());
        std::copy(c.value().begin(), c.value().end(), c0.begin());
        if (train) {
            t.backward(loss);
            for (Parameter* p : {&emb, &wih, &whh, &bias, &dec, &dbias}) {
                for (std::size_t k = 0; k < p->size(); ++k) p->value.data()[k] -= 0.5f * p->grad.data()[k];
                p->zero_grad();
            }
        }
        return loss.value()(0, 0);
    }
};

}  // namespace

TEST_CASE("a steady-state training step and a no-grad evaluation step allocate nothing") {
    TinyLM lm;
    Tape t;
    for (int i = 0; i < 3; ++i) lm.step(t, true);  // warm-up: the tape's node pool grows
    const long before = g_allocs.load();
    float loss = 0.0f;
    for (int i = 0; i < 5; ++i) loss += lm.step(t, true);
    const long train_allocs = g_allocs.load() - before;
    CHECK(std::isfinite(loss));
    CHECK(train_allocs == 0);

    {
        NoGrad ng(t);
        lm.step(t, false);
        const long b2 = g_allocs.load();
        for (int i = 0; i < 3; ++i) lm.step(t, false);
        CHECK(g_allocs.load() - b2 == 0);
    }
}
