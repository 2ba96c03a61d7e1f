// layers/: every cell and layer gradient-checked through time, PyTorch's equations, names, truncated BPTT, clipping.
#include <doctest/doctest.h>

#include <cmath>

#include <fmt/core.h>

#include <xtgrad/apps/examples/mgu_cell.hpp>
#include <xtgrad/layers/adaptive_softmax.hpp>
#include <xtgrad/layers/dropout.hpp>
#include <xtgrad/layers/embedding.hpp>
#include <xtgrad/layers/linear.hpp>
#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/layers/tbptt.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/tape/gradcheck.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

constexpr std::size_t T = 3, B = 2, I = 3, H = 4;

Parameter input_param(std::size_t rows, std::size_t cols, std::uint64_t seed) {
    Rng rng(seed);
    Parameter p("x", Array({rows, cols}));
    fill_uniform(p.value, rng, -1.0f, 1.0f);
    return p;
}

// A non-zero carried state, so that the first step's recurrent weights get a real gradient.
RecurrentState random_state(Recurrent& rnn, std::size_t batch, std::uint64_t seed) {
    Rng rng(seed);
    RecurrentState s = rnn.zero_state(batch);
    for (auto& c : s.cells) {
        fill_uniform(c.h, rng, -0.5f, 0.5f);
        if (c.c.size()) fill_uniform(c.c, rng, -0.5f, 0.5f);
    }
    return s;
}

GradcheckReport check_recurrent(Recurrent& rnn, std::uint64_t seed, bool training, std::size_t steps = T) {
    Parameter x = input_param(steps * B, rnn.input_size(), seed);
    const RecurrentState init = random_state(rnn, B, seed + 1);
    Rng drop;
    Tape tape;
    auto loss = [&](Tape& t) {
        RecurrentState s = init;  // every evaluation starts from the same carried values
        drop.reseed(seed + 2);
        Var y = rnn(t.param(x), B, s, drop, training);
        // the loss reads the output of every step, as a window of an LM does (the carried-out state is a value)
        return random_projection(y, seed + 3);
    };
    std::vector<Parameter*> params = rnn.parameters();
    params.push_back(&x);
    GradcheckOptions opt;
    opt.tolerance = 5e-3;
    return gradcheck(tape, loss, params, opt);
}

CellFactory mgu_factory() {
    return [](const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t hidden, Rng& rng) {
        return std::unique_ptr<Cell>(new MGUCell(prefix, suffix, in, hidden, rng));
    };
}

}  // namespace

TEST_CASE("gradcheck through time: every cell, 3 steps, batch 2") {
    for (CellType c : {CellType::rnn_tanh, CellType::rnn_relu, CellType::lstm, CellType::gru}) {
        Rng rng(11);
        Recurrent rnn("rnn", builtin_cell(c), I, H, 1, 0.0f, false, rng);
        const GradcheckReport r = check_recurrent(rnn, 21, false);
        fmt::print("{:<28} {}\n", cell_type_name(c), r.summary());
        INFO(cell_type_name(c), ": ", r.summary());
        CHECK(r.ok);
    }
}

TEST_CASE("gradcheck: 2-layer stacks with dropout between layers, and bidirectional") {
    for (CellType c : {CellType::lstm, CellType::gru, CellType::rnn_tanh}) {
        Rng rng(12);
        Recurrent stack("rnn", builtin_cell(c), I, H, 2, 0.3f, false, rng);
        const GradcheckReport r = check_recurrent(stack, 31, true);
        fmt::print("{:<28} {}\n", cell_type_name(c) + " 2-layer dropout", r.summary());
        CHECK(r.ok);
        Rng rng2(13);
        Recurrent bi("rnn", builtin_cell(c), I, H, 2, 0.0f, true, rng2);
        const GradcheckReport rb = check_recurrent(bi, 41, false);
        fmt::print("{:<28} {}\n", cell_type_name(c) + " 2-layer bidirectional", rb.summary());
        CHECK(rb.ok);
    }
}

TEST_CASE("gradcheck: a user-defined cell (MGU) in a 2-layer stack") {
    Rng rng(14);
    Recurrent rnn("mgu", mgu_factory(), I, H, 2, 0.0f, false, rng);
    const GradcheckReport r = check_recurrent(rnn, 51, false, 4);
    fmt::print("{:<28} {}\n", "MGU (user cell) 2-layer", r.summary());
    CHECK(r.ok);
}

TEST_CASE("gradcheck: Linear, Embedding (with embedding dropout), LockedDropout") {
    Rng rng(15);
    Linear lin("decoder", 5, 3, rng);
    Embedding emb("encoder", 7, 4, rng);
    LockedDropout locked(0.4f);
    Rng drop;
    Tape tape;
    const Ids ids = {1, 6, 1, 0, 3, 6};
    auto loss = [&](Tape& t) {
        drop.reseed(3);
        Var e = emb(t, ids, 0.3f, drop);                  // (6 x 4): 3 steps of batch 2
        Var l = locked(e, 2, drop, true);
        Var y = lin(concat_cols({l, cols(l, 0, 1)}));    // (6 x 5) -> (6 x 3)
        return random_projection(y, 9);
    };
    std::vector<Parameter*> params = lin.parameters();
    emb.collect(params);
    const GradcheckReport r = gradcheck(tape, loss, params);
    fmt::print("{:<28} {}\n", "Linear+Embedding+Locked", r.summary());
    CHECK(r.ok);
}

TEST_CASE("embedding dropout drops whole word types; locked dropout repeats one mask over the steps") {
    Rng rng(16);
    Embedding emb("encoder", 50, 3, rng);
    Tape t;
    Rng drop(4);
    const Ids ids = {7, 7, 7, 9, 9, 9, 7, 9};
    const Array y = emb(t, ids, 0.5f, drop).value();
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const bool zero = y(i, 0) == 0.0f && y(i, 1) == 0.0f;
        const bool first_zero = y(ids[i] == 7 ? 0 : 3, 0) == 0.0f;
        CHECK(zero == first_zero);
    }
    LockedDropout locked(0.5f);
    Var x = t.constant({4 * 3, 5}, 1.0f);  // 4 steps of batch 3
    const Array m = locked(x, 3, drop, true).value();
    for (std::size_t s = 1; s < 4; ++s)
        for (std::size_t k = 0; k < 15; ++k) CHECK(m.data()[s * 15 + k] == m.data()[k]);
    CHECK(locked(x, 3, drop, false).index == x.index);
    CHECK_THROWS_AS(locked(x, 5, drop, true), ShapeError);
}

TEST_CASE("cells match PyTorch's equations on a fixed example") {
    // Expected values: tests/reference/torch_cells.py with PyTorch 1.13 (float64), weights and inputs as there.
    struct Ref {
        const char* model;
        std::vector<float> out;  // (T, B, H=2) row-major
    };
    const std::vector<Ref> refs = {
        {"RNN_TANH", {0.76414680f, 0.90783046f, 0.46374173f, -0.00568936f, 0.71718145f, -0.21868762f, 0.76482807f,
                      0.69054645f, 0.81793742f, 0.94401499f, 0.74251554f, 0.60570161f}},
        {"RNN_RELU", {1.00610643f, 1.51504613f, 0.50206769f, 0.00000000f, 1.30112577f, 0.15750603f, 1.02665846f,
                      0.87032993f, 1.58055739f, 2.22292514f, 1.15430982f, 0.90828738f}},
        {"LSTM", {-0.27649267f, -0.37498099f, -0.05292944f, -0.10164949f, 0.02022436f, -0.04706270f, -0.22209234f,
                  -0.18921734f, -0.27109557f, -0.40790309f, -0.11553545f, -0.13732408f}},
        {"GRU", {-0.25812317f, -0.58008706f, 0.07968794f, -0.11749261f, 0.48113032f, -0.27701071f, -0.30750622f,
                 -0.40567556f, 0.01478708f, -0.70961241f, -0.18453741f, -0.42732419f}},
    };
    const std::size_t Hs = 2;
    for (const Ref& ref : refs) {
        Rng rng(1);
        Recurrent rnn("rnn", builtin_cell(parse_cell_type(ref.model)), I, Hs, 1, 0.0f, false, rng);
        const std::vector<Parameter*> ps = rnn.parameters();  // weight_ih, weight_hh, bias_ih, bias_hh
        REQUIRE(ps.size() == 4);
        for (std::size_t j = 0; j < 4; ++j)
            for (std::size_t k = 0; k < ps[j]->size(); ++k)
                ps[j]->value.data()[k] = 0.5f * static_cast<float>(std::sin(0.37 * static_cast<double>(k) + j));
        Array x({T * B, I});
        for (std::size_t n = 0; n < x.size(); ++n) x.data()[n] = static_cast<float>(std::cos(0.5 * n));
        RecurrentState s = rnn.zero_state(B);
        for (std::size_t n = 0; n < B * Hs; ++n) {
            s.cells[0].h.data()[n] = 0.1f * static_cast<float>(n + 1);
            if (s.cells[0].c.size()) s.cells[0].c.data()[n] = -0.05f * static_cast<float>(n + 1);
        }
        Tape t;
        Rng drop;
        const Array y = rnn(t.constant(x), B, s, drop, false).value();
        REQUIRE(y.size() == ref.out.size());
        for (std::size_t n = 0; n < y.size(); ++n) {
            INFO(ref.model, " output ", n);
            CHECK(y.data()[n] == doctest::Approx(ref.out[n]).epsilon(1e-5));
        }
    }
}

TEST_CASE("parameters carry PyTorch's dotted names, shapes and saved shapes") {
    Rng rng(1);
    Recurrent rnn("rnn", builtin_cell(CellType::lstm), 5, 3, 2, 0.0f, true, rng);
    std::vector<std::string> names;
    for (Parameter* p : rnn.parameters()) names.push_back(p->name);
    const std::vector<std::string> want = {
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
        "rnn.weight_ih_l0_reverse", "rnn.weight_hh_l0_reverse", "rnn.bias_ih_l0_reverse", "rnn.bias_hh_l0_reverse",
        "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1",
        "rnn.weight_ih_l1_reverse", "rnn.weight_hh_l1_reverse", "rnn.bias_ih_l1_reverse", "rnn.bias_hh_l1_reverse"};
    CHECK(names == want);
    Parameter* w = find_parameter(rnn.parameters(), "rnn.weight_ih_l1");
    REQUIRE(w);
    CHECK(shape_of(w->value) == Shape{12, 6});  // (4H x 2H) for the layer above a bidirectional one
    CHECK(find_parameter(rnn.parameters(), "rnn.bias_hh_l0")->export_shape == std::vector<std::size_t>{12});
    for (Parameter* p : rnn.parameters())
        for (float v : p->value) REQUIRE(std::abs(v) <= 1.0f / std::sqrt(3.0f));  // U(-1/sqrt(H), 1/sqrt(H))
    Linear lin("decoder", 3, 10, rng);
    CHECK(lin.parameters()[0]->name == "decoder.weight");
    CHECK(lin.parameters()[1]->name == "decoder.bias");
    CHECK_THROWS_AS(parse_cell_type("LSTMX"), ConfigError);
}

TEST_CASE("bad shapes and settings of layers are named") {
    Rng rng(1), drop(2);
    Recurrent rnn("rnn", builtin_cell(CellType::gru), 3, 4, 1, 0.0f, false, rng);
    Tape t;
    RecurrentState s;
    CHECK_THROWS_WITH_AS(rnn(t.constant({6, 5}, 0.0f), 2, s, drop, false), doctest::Contains("has 5 features, the layer takes 3"), ShapeError);
    CHECK_THROWS_WITH_AS(rnn(t.constant({5, 3}, 0.0f), 2, s, drop, false), doctest::Contains("not a whole number of steps"), ShapeError);
    RecurrentState s3 = rnn.zero_state(3);
    CHECK_THROWS_WITH_AS(rnn(t.constant({6, 3}, 0.0f), 2, s3, drop, false), doctest::Contains("batch 3"), ShapeError);
    CHECK_THROWS_AS(Recurrent("r", builtin_cell(CellType::lstm), 3, 0, 1, 0.0f, false, rng), ConfigError);
    CHECK_THROWS_AS(Recurrent("r", builtin_cell(CellType::lstm), 3, 4, 1, 1.0f, false, rng), ConfigError);
    Embedding emb("e", 5, 2, rng);
    CHECK_THROWS_AS(emb(t, {5}), IndexError);
}

namespace {

// A tiny LM over a fixed token sequence, for the truncated-BPTT tests.
struct SeqModel {
    static constexpr std::size_t V = 20, E = 4, Hd = 5, Bt = 2;
    Rng rng{5};
    Embedding emb{"encoder", V, E, rng};
    Recurrent rnn{"rnn", builtin_cell(CellType::lstm), E, Hd, 1, 0.0f, false, rng};
    Linear dec{"decoder", Hd, V, rng};
    std::vector<Ids> inputs, targets;  // per step: (Bt) ids
    Ids in_ids, out_ids;

    SeqModel(std::size_t steps) {
        Rng data(9);
        for (std::size_t s = 0; s < steps; ++s) {
            Ids a, b;
            for (std::size_t k = 0; k < Bt; ++k) {
                a.push_back(static_cast<int>(data.below(V)));
                b.push_back(static_cast<int>(data.below(V)));
            }
            inputs.push_back(a);
            targets.push_back(b);
        }
    }
    std::vector<Parameter*> params() {
        std::vector<Parameter*> p = emb.parameters();
        rnn.collect(p);
        dec.collect(p);
        return p;
    }
    // Sum-reduced loss of steps [t0, t1) from the carried state.
    Var window(Tape& t, std::size_t t0, std::size_t t1, RecurrentState& state, const std::vector<Ids>* in = nullptr) {
        const std::vector<Ids>& src = in ? *in : inputs;
        in_ids.clear();
        out_ids.clear();
        for (std::size_t s = t0; s < t1; ++s) {
            in_ids.insert(in_ids.end(), src[s].begin(), src[s].end());
            out_ids.insert(out_ids.end(), targets[s].begin(), targets[s].end());
        }
        Rng drop;
        Var h = rnn(emb(t, in_ids), Bt, state, drop, false);
        return cross_entropy(dec(h), out_ids, Reduction::sum);
    }
};

std::vector<Array> grads_of(const std::vector<Parameter*>& ps) {
    std::vector<Array> g;
    for (Parameter* p : ps) g.push_back(p->grad);
    return g;
}

}  // namespace

TEST_CASE("truncated BPTT with a window as long as the sequence gives exactly the full-BPTT gradients") {
    const std::size_t L = 12;
    SeqModel m(L);
    Tape tape;
    RecurrentState s;
    m.rnn.zero_grad();
    for (Parameter* p : m.params()) p->zero_grad();
    tape.backward(m.window(tape, 0, L, s));
    const std::vector<Array> full = grads_of(m.params());

    for (Parameter* p : m.params()) p->zero_grad();
    RecurrentState s2;
    truncated_bptt(tape, L, L, [&](Tape& t, std::size_t t0, std::size_t t1) { return m.window(t, t0, t1, s2); }, nullptr);
    const std::vector<Array> tb = grads_of(m.params());
    for (std::size_t k = 0; k < full.size(); ++k) CHECK(full[k] == tb[k]);  // bit-identical
}

TEST_CASE("truncated BPTT: no gradient crosses a window boundary, and memory stays flat") {
    const std::size_t L = 12, W = 4;
    SeqModel m(L);
    // window 0 uses only tokens 0..9, windows 1 and 2 only tokens 10..19
    std::vector<Ids> in = m.inputs;
    for (std::size_t s = 0; s < L; ++s)
        for (auto& id : in[s]) id = s < W ? id % 10 : 10 + id % 10;
    Tape tape;
    RecurrentState s;
    std::size_t checked = 0;
    truncated_bptt(
        tape, L, W, [&](Tape& t, std::size_t t0, std::size_t t1) { return m.window(t, t0, t1, s, &in); },
        [&](std::size_t k, float) {
            if (k > 0) {
                // the embedding rows only window 0 used get nothing from a later window's loss
                for (std::size_t row = 0; row < 10; ++row)
                    for (std::size_t c = 0; c < SeqModel::E; ++c) REQUIRE(m.emb.weight.grad(row, c) == 0.0f);
                ++checked;
            }
            for (Parameter* p : m.params()) p->zero_grad();
        });
    CHECK(checked == 2);

    // gradients of window 1 alone equal those of a fresh run started from window 0's final values
    for (Parameter* p : m.params()) p->zero_grad();
    RecurrentState a;
    tape.clear();
    m.window(tape, 0, W, a, &in);
    RecurrentState b = a;  // values only
    tape.clear();
    tape.backward(m.window(tape, W, 2 * W, a, &in));
    const std::vector<Array> g1 = grads_of(m.params());
    for (Parameter* p : m.params()) p->zero_grad();
    tape.clear();
    tape.backward(m.window(tape, W, 2 * W, b, &in));
    CHECK(grads_of(m.params()) == g1);

    // 1,000 windows: the tape records the same number of nodes and never grows its pool
    SeqModel big(W);
    Tape t2;
    RecurrentState st;
    std::size_t nodes = 0, pool = 0;
    for (int k = 0; k < 1000; ++k) {
        truncated_bptt(t2, W, W, [&](Tape& t, std::size_t t0, std::size_t t1) {
            Var l = big.window(t, t0, t1, st);
            if (k == 1) {
                nodes = t.size();
                pool = t.pool_size();
            }
            if (k > 1) {
                REQUIRE(t.size() == nodes);
                REQUIRE(t.pool_size() == pool);
            }
            return l;
        }, [&](std::size_t, float) { for (Parameter* p : big.params()) p->zero_grad(); });
    }
    CHECK(nodes > 0);
}

TEST_CASE("clip_grad_norm returns the norm before clipping and scales to max_norm; NaN is reported, not applied") {
    Parameter a("a", Array({1, 2}, 0.0f)), b("b", Array({1, 1}, 0.0f));
    a.grad(0, 0) = 3.0f;
    a.grad(0, 1) = 0.0f;
    b.grad(0, 0) = 4.0f;
    ClipResult r = clip_grad_norm({&a, &b}, 1.0);
    CHECK(r.norm == doctest::Approx(5.0));
    CHECK(r.clipped);
    CHECK(grad_norm({&a, &b}) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(a.grad(0, 0) == doctest::Approx(0.6).epsilon(1e-5));
    r = clip_grad_norm({&a, &b}, 10.0);
    CHECK_FALSE(r.clipped);
    CHECK(a.grad(0, 0) == doctest::Approx(0.6).epsilon(1e-5));
    b.grad(0, 0) = NAN;
    r = clip_grad_norm({&a, &b}, 1.0);
    CHECK_FALSE(r.finite);
    CHECK_FALSE(r.clipped);
    CHECK(a.grad(0, 0) == doctest::Approx(0.6).epsilon(1e-5));  // untouched
    b.grad(0, 0) = -7.0f;
    CHECK(clip_grad_value({&a, &b}, 0.5f) == 2);
    CHECK(a.grad(0, 0) == 0.5f);
    CHECK(b.grad(0, 0) == -0.5f);
    CHECK_THROWS_AS(clip_grad_norm({&a}, 0.0), ConfigError);
}

TEST_CASE("adaptive softmax: gradient check, a proper distribution, loss = -log p(target)") {
    Rng rng(21);
    const std::size_t V = 12, Hd = 6, n = 7;
    // ranks by a made-up frequency order, so that the id -> rank mapping is exercised
    const std::vector<std::int32_t> order = frequency_order({3, 3, 3, 7, 7, 1, 0, 11, 5, 5, 5, 5}, V);
    CHECK(order[5] == 0);  // most frequent
    CHECK(order[3] == 1);
    AdaptiveSoftmax asm_("decoder", Hd, V, {3, 7}, 2.0f, rng, order);
    CHECK(asm_.head.value.shape()[0] == 3 + 2);
    CHECK(asm_.proj[0].value.shape()[0] == 3);  // 6 / 2
    CHECK(asm_.proj[1].value.shape()[0] == 1);  // 6 / 4
    CHECK(asm_.out[1].value.shape()[0] == 5);   // ranks 7..11
    Parameter h = input_param(n, Hd, 22);
    const Ids targets = {5, 3, 0, 11, 9, 2, 3};  // head, tail 0 and tail 1 all used
    Tape tape;
    auto loss = [&](Tape& t) { return asm_.loss(t.param(h), targets, Reduction::sum); };
    std::vector<Parameter*> params = asm_.parameters();
    params.push_back(&h);
    const GradcheckReport r = gradcheck(tape, loss, params);
    fmt::print("{:<28} {}\n", "adaptive softmax", r.summary());
    CHECK(r.ok);

    tape.clear();
    const Array lp = asm_.log_prob(tape, tape.param(h));
    tape.clear();
    const double total = asm_.loss(tape.param(h), targets, Reduction::sum).value()(0, 0);
    double by_hand = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        double z = 0.0;
        for (std::size_t k = 0; k < V; ++k) z += std::exp(static_cast<double>(lp(i, k)));
        CHECK(z == doctest::Approx(1.0).epsilon(1e-5));
        by_hand -= lp(i, static_cast<std::size_t>(targets[i]));
    }
    CHECK(total == doctest::Approx(by_hand).epsilon(1e-5));
    CHECK_THROWS_AS(AdaptiveSoftmax("d", Hd, V, {7, 3}, 2.0f, rng), ConfigError);
    CHECK_THROWS_AS(AdaptiveSoftmax("d", Hd, V, {3, 12}, 2.0f, rng), ConfigError);
}
