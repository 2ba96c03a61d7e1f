// A steady-state training window of the app's model allocates nothing: count every operator new.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <xtgrad/lm.hpp>

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

// The app's own objects and calls, as the trainer makes them: RNNLM.features + loss, the state carried as values,
// truncated_bptt's window loop, clipping, the optimiser; and evaluation under NoGrad.
struct Run {
    static constexpr std::size_t V = 60, T = 6;
    std::size_t B;
    LMConfig cfg;
    Rng rng{3}, data{4};
    std::unique_ptr<RNNLM> model;
    std::unique_ptr<Optimizer> opt;
    std::vector<Parameter*> params;
    RecurrentState hidden;
    Ids in, tg;
    Tape tape;
    Ctx ctx{tape, rng, true};

    Run(const std::string& cell, bool adaptive, float weight_drop, const std::string& optimizer, std::size_t batch = 4,
        Precision precision = Precision::fp32)
        : B(batch) {
        tape.set_precision(precision);
        cfg.cell = cell;
        cfg.vocab = V;
        cfg.emsize = cfg.nhid = 10;
        cfg.nlayers = 2;
        cfg.dropout = 0.2f;
        cfg.weight_drop = weight_drop;
        if (adaptive) {
            cfg.cutoffs = {10, 30};
            Ids corpus;
            for (std::size_t k = 0; k < 500; ++k) corpus.push_back(static_cast<std::int32_t>(data.below(V)));
            cfg.order = frequency_order(corpus, V);
        }
        model = std::make_unique<RNNLM>(cfg, builtin_cell(parse_cell_type(cell)), rng);
        params = model->parameters();
        opt = make_optimizer(optimizer, params, 0.1, 0.9);
        hidden = model->zero_state(B);
        in.resize(B * T);
        tg.resize(B * T);
    }
    void draw() {
        for (std::size_t i = 0; i < B * T; ++i) {
            in[i] = static_cast<std::int32_t>(data.below(V));
            tg[i] = static_cast<std::int32_t>(data.below(V));
        }
    }
    // `windows` training windows through truncated_bptt, as Trainer::run_epoch drives them
    void train(std::size_t windows, const WindowHooks& hooks) { truncated_bptt(tape, 0, windows * T, T, hooks); }
    WindowHooks hooks() {
        WindowHooks h;
        h.loss = [this](Tape&, const WindowInfo&) {
            draw();
            const RecurrentOutput f = model->features(ctx, in, B, hidden);
            Var loss = model->loss(ctx, f.y, tg);
            hidden.assign(f);
            return loss;
        };
        h.update = [this](const WindowInfo&) {
            clip_grad_norm(params, 0.25);
            opt->step();
            opt->zero_grad();
            return true;
        };
        return h;
    }
    void eval_window() {
        NoGrad ng(tape);
        Ctx c{tape, rng, false};
        draw();
        tape.clear();
        const RecurrentOutput f = model->features(c, in, B, hidden);
        model->loss(c, f.y, tg);
        hidden.assign(f);
    }
};

}  // namespace

TEST_CASE("steady-state training windows and no-grad evaluation windows of the app's model allocate nothing") {
    struct Case {
        const char* cell;
        bool adaptive;
        float weight_drop;
        const char* optimizer;
    };
    for (const Case& k : {Case{"LSTM", false, 0.0f, "sgd"}, Case{"GRU", true, 0.0f, "adam"},
                          Case{"LSTM", false, 0.3f, "ntasgd"}, Case{"RNN_TANH", true, 0.0f, "rmsprop"}}) {
        INFO(std::string(k.cell), k.adaptive ? " adaptive softmax" : "", " weight drop ", k.weight_drop, ", ",
             std::string(k.optimizer));
        Run run(k.cell, k.adaptive, k.weight_drop, k.optimizer);
        const WindowHooks h = run.hooks();
        run.train(3, h);  // warm-up: the tape's pools grow
        const long before = g_allocs.load();
        run.train(5, h);
        const long train_allocs = g_allocs.load() - before;
        for (int i = 0; i < 3; ++i) run.eval_window();
        const long b2 = g_allocs.load();
        for (int i = 0; i < 3; ++i) run.eval_window();
        const long eval_allocs = g_allocs.load() - b2;
        if (!k.adaptive) {
            CHECK(train_allocs == 0);
            CHECK(eval_allocs == 0);
        } else {
            // The adaptive softmax sends each window's rows to its clusters by target: a cluster's buffers change
            // size with the data (xtensor arrays have no spare capacity), at most 8 per cluster per window; every
            // other buffer is reused.
            CHECK(train_allocs <= 5 * 8 * 2);
            CHECK(eval_allocs <= 3 * 4 * 2);
        }
    }
}

TEST_CASE("a bf16 tape's steady state: xtgrad allocates nothing; a oneDNN product allocates its argument map") {
    // 12 x 6 = 72 rows: the decoder and the input projections run in bf16.
    Run run("LSTM", false, 0.0f, "sgd", 12, Precision::bf16);
    const WindowHooks h = run.hooks();
    run.train(3, h);
    std::vector<GemmCall> calls;
    calls.reserve(100000);
    record_gemm_calls(&calls);
    const long before = g_allocs.load();
    run.train(5, h);
    const long train_allocs = g_allocs.load() - before;
    record_gemm_calls(nullptr);
    std::size_t bf16_calls[2] = {0, 0};  // by beta: 0 (assign), 1 (accumulate)
    for (const GemmCall& c : calls) bf16_calls[c.beta != 0.0f] += c.precision == Precision::bf16;
    // per window: the decoder's 3 products and 3 per layer's input projection, of which the forward products (onto
    // the bias) and the weight gradients (into the parameters') accumulate
    CHECK(bf16_calls[0] == 5 * 3);
    CHECK(bf16_calls[1] == 5 * 6);
    // what one oneDNN product allocates inside oneDNN (its std::unordered_map of arguments), measured here
    long per_product[2] = {0, 0};
    Array C({72, 60}, 0.0f);
    std::vector<bf16> A16(72 * 10, 0x3f80), B16(10 * 60, 0x3f80);
    for (int beta = 0; beta < 2; ++beta) {
        const auto product = [&] {
            gemm("probe", ConstMat16{A16.data(), 72, 10, 10}, false, ConstMat16{B16.data(), 10, 60, 60}, false, mat(C),
                 1.0f, static_cast<float>(beta));
        };
        product();
        const long p0 = g_allocs.load();
        product();
        per_product[beta] = g_allocs.load() - p0;
    }
    MESSAGE("a product allocates " << per_product[0] << " blocks (beta 0), " << per_product[1] << " (beta 1) in the "
            << "backend; " << train_allocs << " in 5 windows");
    if (!onednn_built()) CHECK(per_product[0] + per_product[1] == 0);  // OpenBLAS and the widening buffers: none
    CHECK(train_allocs == static_cast<long>(bf16_calls[0]) * per_product[0] + static_cast<long>(bf16_calls[1]) * per_product[1]);
}
