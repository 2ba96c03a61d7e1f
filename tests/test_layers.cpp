// layers/: every cell and layer gradient-checked through time, PyTorch's equations and names, padded batches,
// truncated BPTT against finite differences, probes, two tapes in two threads, clipping.
#include <doctest/doctest.h>

#include <cmath>
#include <thread>

#include <fmt/core.h>

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

#include "recurrent_checks.hpp"

using namespace xtgrad;
using namespace xtgrad::testing;

namespace {

constexpr std::size_t T = 3, B = 2, I = 3, H = 4;

// The loss reads every output and every final state part, each through its own random projection.
Var probe_loss(const RecurrentOutput& out, std::uint64_t seed) {
    Var l = random_projection(out.y, seed);
    for (const State& s : *out.final)
        for (const Var& part : s) l = l + random_projection(part, ++seed);
    return l;
}

GradcheckReport check_recurrent(Recurrent& rnn, std::uint64_t seed, bool training, std::size_t steps = T,
                                const Lengths* lengths = nullptr, double tolerance = 5e-3) {
    Parameter x = input_param(steps * B, rnn.input_size(), seed);
    const RecurrentState init = random_state(rnn, B, seed + 1);
    Rng drop;
    Tape tape;
    auto loss = [&](Tape& t) {
        drop.reseed(seed + 2);  // the same dropout masks at every evaluation
        Ctx c{t, drop, training};
        return probe_loss(rnn(c, t.param(x), B, init, lengths), seed + 3);
    };
    std::vector<Parameter*> params = rnn.parameters();
    params.push_back(&x);
    GradcheckOptions opt;
    opt.tolerance = tolerance;
    return gradcheck(tape, loss, params, opt);
}

// A user cell unlike the built-in ones: three state parts of different widths (h, a running sum s of the inputs'
// projections, and a memory of the last two h side by side), an output wider than h, and a weight dropped once
// per window. Written only with public ops; its step reads its time index.
class OddCell : public Cell {
public:
    OddCell(const CellSpec& spec, Rng& rng)
        : W(spec.name("weight_ih"), Array({spec.hidden, spec.input})),
          U(spec.name("weight_hh"), Array({spec.hidden, 3 * spec.hidden})),
          V(spec.name("weight_out"), Array({2 * spec.hidden, spec.hidden})),
          drop_(spec.weight_drop) {
        for (Parameter* p : {&W, &U, &V}) fill_uniform(p->value, rng, -0.5f, 0.5f);
    }
    std::size_t input_size() const override { return W.value.shape()[1]; }
    std::size_t hidden_size() const override { return W.value.shape()[0]; }
    std::size_t output_size() const override { return 2 * hidden_size(); }
    std::vector<StatePart> state_parts() const override {
        return {{"h", hidden_size()}, {"s", 1}, {"mem", 2 * hidden_size()}};
    }
    Window project(Ctx& c, Var x) override {
        Window w{matmul_t(x, c.tape.param(W)), {}};
        w.extra[0] = c.training && drop_ > 0 ? dropout(c.tape.param(U), drop_, c.rng) : c.tape.param(U);
        return w;
    }
    StepOut step(const Step& at, Var x_t, const State& s) override {
        const std::size_t Hd = hidden_size();
        Var hs = concat_cols({s[0], s[2]});                          // (B x 3H)
        Var h = tanh(x_t + matmul_t(hs, at.window.extra[0]) + s[1]);  // s broadcasts over columns
        Var sum = s[1] + scale(sum_cols_of(x_t), 0.1f);
        Var mem = concat_cols({cols(s[2], Hd, 2 * Hd), h});
        return {State{h, sum, mem}, sigmoid(matmul_t(h, at.tape().param(V)))};
    }
    void collect(std::vector<Parameter*>& out) override { out.insert(out.end(), {&W, &U, &V}); }

    // (B x H) -> (B x 1): row sums as a product with a ones column (public ops only)
    static Var sum_cols_of(Var x) { return matmul(x, x.tape->constant({x.cols(), 1}, 1.0f)); }

    Parameter W, U, V;
    float drop_;
};

CellFactory odd_factory() { return cell_factory<OddCell>(); }

}  // namespace

TEST_CASE("gradcheck through time: every built-in cell, 3 steps, batch 2, outputs and final states") {
    for (CellType c : {CellType::rnn_tanh, CellType::rnn_relu, CellType::lstm, CellType::gru}) {
        Rng rng(11);
        Recurrent rnn("rnn", builtin_cell(c), I, H, 1, 0.0f, false, rng);
        const GradcheckReport r = check_recurrent(rnn, 21, false);
        fmt::print("{:<36} {}\n", cell_type_name(c), r.summary());
        INFO(cell_type_name(c), ": ", r.summary());
        CHECK(r.ok);
    }
}

TEST_CASE("gradcheck: 2-layer stacks with dropout between layers and weight drop, and bidirectional") {
    for (CellType c : {CellType::lstm, CellType::gru, CellType::rnn_tanh}) {
        Rng rng(12);
        Recurrent stack("rnn", builtin_cell(c), I, H, 2, 0.3f, false, rng, 0.4f);
        const GradcheckReport r = check_recurrent(stack, 31, true);
        fmt::print("{:<36} {}\n", cell_type_name(c) + " 2-layer dropout, weight drop", r.summary());
        CHECK(r.ok);
        Rng rng2(13);
        Recurrent bi("rnn", builtin_cell(c), I, H, 2, 0.0f, true, rng2);
        const GradcheckReport rb = check_recurrent(bi, 41, false);
        fmt::print("{:<36} {}\n", cell_type_name(c) + " 2-layer bidirectional", rb.summary());
        CHECK(rb.ok);
    }
}

TEST_CASE("gradcheck: a user cell with three state parts, a wider output and a dropped weight, stacked") {
    Rng rng(14);
    Recurrent rnn("odd", odd_factory(), I, H, 2, 0.2f, true, rng, 0.3f);
    CHECK(rnn.output_size() == 2 * 2 * H);
    const GradcheckReport r = check_recurrent(rnn, 51, true, 4);
    fmt::print("{:<36} {}\n", "user cell, 2-layer bidirectional", r.summary());
    CHECK(r.ok);
}

TEST_CASE("gradcheck through padded batches: built-in cells and a user cell, stacked, bidirectional") {
    const Lengths lengths{4, 2};
    for (CellType c : {CellType::lstm, CellType::gru, CellType::rnn_tanh}) {
        Rng rng(15);
        Recurrent rnn("rnn", builtin_cell(c), I, H, 2, 0.0f, true, rng);
        const GradcheckReport r = check_recurrent(rnn, 61, false, 4, &lengths);
        fmt::print("{:<36} {}\n", cell_type_name(c) + " padded 2-layer bidirectional", r.summary());
        CHECK(r.ok);
    }
    Rng rng(16);
    Recurrent odd("odd", odd_factory(), I, H, 2, 0.0f, true, rng);
    const GradcheckReport r = check_recurrent(odd, 62, false, 4, &lengths);
    fmt::print("{:<36} {}\n", "user cell padded 2-layer bidi", r.summary());
    CHECK(r.ok);
}

TEST_CASE("padding: each sequence of a padded batch = the sequence alone (outputs, final states, gradients)") {
    for (CellType c : {CellType::lstm, CellType::gru, CellType::rnn_tanh, CellType::rnn_relu})
        for (bool bidi : {false, true}) {
            const double gap = padding_gap(builtin_cell(c), bidi, 71);
            INFO(cell_type_name(c), bidi ? " bidirectional" : "", ": worst difference ", gap);
            CHECK(gap <= 1e-6);
        }
    const double gap = padding_gap(odd_factory(), true, 72);
    INFO("user cell: worst difference ", gap);
    CHECK(gap <= 1e-6);
}

TEST_CASE("a step knows its window: time index, direction, layer, and probes see gates and state parts") {
    struct Seen : Probes {
        std::vector<std::string> names;
        std::vector<ProbePoint> where;
        void record(const ProbePoint& p, const char* name, Var v) override {
            REQUIRE(v.tape);
            names.push_back(name);
            where.push_back(p);
        }
    } seen;
    Rng rng(3);
    Recurrent rnn("rnn", builtin_cell(CellType::lstm), I, H, 2, 0.0f, true, rng);
    Tape t;
    Rng unused;
    Ctx c{t, unused, false, &seen};
    rnn(c, t.constant({T * B, I}, 0.5f), B);
    // per layer, direction and step: the gates i, f, g, o, then the state parts h and c
    REQUIRE(seen.names.size() == 2 * 2 * T * 6);
    CHECK(seen.names[0] == "i");
    CHECK(seen.names[4] == "h");
    CHECK(seen.names[5] == "c");
    CHECK(seen.where[6].t == 1);              // the forward direction's second step
    CHECK(seen.where[T * 6].dir == 1);        // then the reverse direction, from the last step
    CHECK(seen.where[T * 6].t == T - 1);
    CHECK(seen.where.back().layer == 1);
    Ctx quiet{t, unused, false};              // no receiver: nothing recorded
    seen.names.clear();
    rnn(quiet, t.constant({T * B, I}, 0.5f), B);
    CHECK(seen.names.empty());
}

TEST_CASE("two tapes in two threads: one Recurrent evaluated at once, two models trained at once") {
    // forward only (a parameter's gradient is one buffer: concurrent backward passes need a model each)
    Rng rng(4);
    Recurrent shared("rnn", builtin_cell(CellType::lstm), I, H, 2, 0.3f, false, rng, 0.2f);
    auto forward = [&](std::uint64_t seed, Array& y) {
        Tape t;
        NoGrad ng(t);
        Rng drop(seed);
        Ctx c{t, drop, true};  // dropout and weight drop draw: per-call values live on each tape
        const Parameter x = input_param(6 * B, I, seed);
        for (int rep = 0; rep < 50; ++rep) {
            t.clear();
            y = shared(c, t.constant(x.value), B).y.value();
        }
    };
    Array ya, yb, ya1, yb1;
    std::thread ta([&] { forward(7, ya); });
    std::thread tb([&] { forward(8, yb); });
    ta.join();
    tb.join();
    forward(7, ya1);
    forward(8, yb1);
    CHECK(ya == ya1);
    CHECK(yb == yb1);

    // training: two models, two threads
    auto train = [](std::uint64_t seed, std::vector<Array>& grads) {
        Rng rng(seed);
        Recurrent rnn("rnn", builtin_cell(CellType::gru), I, H, 2, 0.3f, true, rng);
        Parameter x = input_param(5 * B, I, seed);
        Tape t;
        Rng drop(seed + 1);
        Ctx c{t, drop, true};
        for (int rep = 0; rep < 20; ++rep) {
            t.clear();
            t.backward(random_projection(rnn(c, t.param(x), B).y, seed));
        }
        grads.clear();
        for (Parameter* p : rnn.parameters()) grads.push_back(p->grad);
    };
    std::vector<Array> g1, g2, s1, s2;
    std::thread t1([&] { train(21, g1); });
    std::thread t2([&] { train(22, g2); });
    t1.join();
    t2.join();
    train(21, s1);
    train(22, s2);
    CHECK(g1 == s1);
    CHECK(g2 == s2);
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
        Ctx c{t, drop, true};
        Var e = emb(c, ids, 0.3f);                        // (6 x 4): 3 steps of batch 2
        Var l = locked(c, e, 2);
        Var y = lin(concat_cols({l, cols(l, 0, 1)}));    // (6 x 5) -> (6 x 3)
        return random_projection(y, 9);
    };
    std::vector<Parameter*> params = lin.parameters();
    emb.collect(params);
    const GradcheckReport r = gradcheck(tape, loss, params);
    fmt::print("{:<36} {}\n", "Linear+Embedding+Locked", r.summary());
    CHECK(r.ok);
}

TEST_CASE("embedding dropout drops whole word types; locked dropout repeats one mask over the steps") {
    Rng rng(16);
    Embedding emb("encoder", 50, 3, rng);
    Tape t;
    Rng drop(4);
    Ctx c{t, drop, true};
    const Ids ids = {7, 7, 7, 9, 9, 9, 7, 9};
    std::size_t zeros = 0;
    for (int rep = 0; rep < 20; ++rep) {  // some draw drops a type: both outcomes are seen
        const Array y = emb(c, ids, 0.5f).value();
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const bool zero = y(i, 0) == 0.0f && y(i, 1) == 0.0f;
            const bool first_zero = y(ids[i] == 7 ? 0 : 3, 0) == 0.0f;
            CHECK(zero == first_zero);
            zeros += zero;
        }
    }
    CHECK(zeros > 0);
    CHECK(zeros < 20 * ids.size());
    LockedDropout locked(0.5f);
    Var x = t.constant({4 * 3, 5}, 1.0f);  // 4 steps of batch 3
    const Array m = locked(c, x, 3).value();
    for (std::size_t s = 1; s < 4; ++s)
        for (std::size_t k = 0; k < 15; ++k) CHECK(m.data()[s * 15 + k] == m.data()[k]);
    Ctx eval{t, drop, false};
    CHECK(locked(eval, x, 3).index == x.index);
    CHECK_THROWS_AS(locked(c, x, 5), ShapeError);
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

    explicit SeqModel(std::size_t steps) {
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
    // Mean loss of steps [t0, t1) from the carried state; the state after the window goes to `out`.
    Var window(Tape& t, std::size_t t0, std::size_t t1, const RecurrentState& in, RecurrentState* out) {
        Ids in_ids, out_ids;
        for (std::size_t s = t0; s < t1; ++s) {
            in_ids.insert(in_ids.end(), inputs[s].begin(), inputs[s].end());
            out_ids.insert(out_ids.end(), targets[s].begin(), targets[s].end());
        }
        Rng drop;
        Ctx c{t, drop, false};
        const RecurrentOutput r = rnn(c, emb(c, in_ids), Bt, in);
        if (out) out->assign(r);
        return cross_entropy(dec(r.y), out_ids);
    }
};

}  // namespace

TEST_CASE("truncated BPTT: each update sees exactly d(window loss)/d(params) from the state carried in") {
    // The reference is central differences of each window's loss with its carried-in state held fixed: the
    // definition of truncation, computed without the tape's backward pass. A gradient leaking across a boundary,
    // or one window's gradient mixed into another's, fails it.
    const std::size_t L = 12;
    SeqModel m(L);
    std::vector<Parameter*> params = m.params();
    for (Parameter* p : params) p->zero_grad();
    Tape tape;
    RecurrentState carried;
    std::vector<RecurrentState> carried_in;
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    std::vector<std::vector<Array>> grads;
    WindowHooks h;
    const std::size_t lengths[] = {3, 5, 4};
    h.length = [&](std::size_t t0) { return lengths[t0 == 0 ? 0 : t0 == 3 ? 1 : 2]; };
    h.loss = [&](Tape& t, const WindowInfo& w) {
        carried_in.push_back(carried);
        spans.emplace_back(w.t0, w.t1);
        return m.window(t, w.t0, w.t1, carried_in.back(), &carried);
    };
    h.update = [&](const WindowInfo&) {
        grads.emplace_back();
        for (Parameter* p : params) grads.back().push_back(p->grad), p->zero_grad();
        return true;
    };
    const TbpttResult r = truncated_bptt(tape, 0, L, 0, h);
    REQUIRE(r.windows == 3);
    CHECK(spans == std::vector<std::pair<std::size_t, std::size_t>>{{0, 3}, {3, 8}, {8, 12}});
    CHECK(r.next == L);
    CHECK_FALSE(r.stopped);
    double worst = 0.0;
    for (std::size_t k = 0; k < 3; ++k) {
        auto loss = [&]() {
            tape.clear();
            return static_cast<double>(m.window(tape, spans[k].first, spans[k].second, carried_in[k], nullptr).value()(0, 0));
        };
        for (std::size_t j = 0; j < params.size(); ++j)
            for (std::size_t e = 0; e < params[j]->size(); e += 3) {
                float& v = params[j]->value.data()[e];
                const float saved = v;
                v = saved + 1e-2f;
                const double up = loss();
                v = saved - 1e-2f;
                const double down = loss();
                v = saved;
                const double num = (up - down) / 2e-2, ana = grads[k][j].data()[e];
                worst = std::max(worst, std::abs(num - ana) / std::max({std::abs(num), std::abs(ana), 1e-2}));
            }
    }
    INFO("worst relative error ", worst);
    CHECK(worst < 5e-3);
}

TEST_CASE("truncated BPTT: resume at a step, stop from a hook, skip or stop on a non-finite loss; memory flat") {
    SeqModel m(12);
    Tape tape;
    RecurrentState st;
    std::vector<std::size_t> seen;
    WindowHooks h;
    h.loss = [&](Tape& t, const WindowInfo& w) {
        seen.push_back(w.index);
        Var l = m.window(t, w.t0, w.t1, st, &st);
        return w.index == 2 ? scale(l, std::numeric_limits<float>::infinity()) : l;
    };
    h.update = [&](const WindowInfo&) { return true; };
    // starts at step 4 (window 1 of 4 steps), window 2 is not finite: without a policy the run stops there
    TbpttResult r = truncated_bptt(tape, 4, 12, 4, h, 1);
    CHECK(seen == std::vector<std::size_t>{1, 2});
    CHECK(r.stopped);
    CHECK(r.non_finite);
    CHECK(r.windows == 1);
    // with a policy that skips it, the run goes on to the end
    seen.clear();
    h.non_finite = [](const WindowInfo&) { return true; };
    r = truncated_bptt(tape, 4, 12, 4, h, 1);
    CHECK(seen == std::vector<std::size_t>{1, 2});
    CHECK_FALSE(r.stopped);
    CHECK(r.windows == 1);
    // an update returning false stops after its window
    seen.clear();
    h.update = [](const WindowInfo& w) { return w.index < 1; };
    r = truncated_bptt(tape, 0, 12, 4, h);
    CHECK(seen == std::vector<std::size_t>{0, 1});
    CHECK(r.stopped);
    CHECK(r.next == 8);

    // 1,000 windows: the tape records the same number of nodes and never grows its pool
    SeqModel big(4);
    Tape t2;
    RecurrentState s2;
    std::size_t nodes = 0, pool = 0;
    for (int k = 0; k < 1000; ++k) {
        truncated_bptt(t2, 4, 4, [&](Tape& t, std::size_t t0, std::size_t t1) {
            Var l = big.window(t, t0, t1, s2, &s2);
            if (k == 1) nodes = t.size(), pool = t.pool_size();
            if (k > 1) {
                REQUIRE(t.size() == nodes);
                REQUIRE(t.pool_size() == pool);
            }
            return l;
        }, [&](std::size_t, float) { for (Parameter* p : big.params()) p->zero_grad(); });
    }
    CHECK(nodes > 0);
}

TEST_CASE("bad shapes and settings of layers are named") {
    Rng rng(1), drop(2);
    Recurrent rnn("rnn", builtin_cell(CellType::gru), 3, 4, 1, 0.0f, false, rng);
    Tape t;
    Ctx c{t, drop, false};
    CHECK_THROWS_WITH_AS(rnn(c, t.constant({6, 5}, 0.0f), 2), doctest::Contains("has 5 features, the layer takes 3"), ShapeError);
    CHECK_THROWS_WITH_AS(rnn(c, t.constant({5, 3}, 0.0f), 2), doctest::Contains("not a whole number of steps"), ShapeError);
    const RecurrentState s3 = rnn.zero_state(3);
    CHECK_THROWS_WITH_AS(rnn(c, t.constant({6, 3}, 0.0f), 2, s3), doctest::Contains("(2 x 4)"), ShapeError);
    const Lengths too_long{3, 4}, too_few{3};
    CHECK_THROWS_WITH_AS(rnn(c, t.constant({6, 3}, 0.0f), 2, {}, &too_long), doctest::Contains("length 4"), ShapeError);
    CHECK_THROWS_WITH_AS(rnn(c, t.constant({6, 3}, 0.0f), 2, {}, &too_few), doctest::Contains("1 lengths"), ShapeError);
    CHECK_THROWS_AS(Recurrent("r", builtin_cell(CellType::lstm), 3, 0, 1, 0.0f, false, rng), ConfigError);
    CHECK_THROWS_AS(Recurrent("r", builtin_cell(CellType::lstm), 3, 4, 1, 1.0f, false, rng), ConfigError);
    CHECK_THROWS_AS(Recurrent("r", builtin_cell(CellType::lstm), 3, 4, 1, 0.0f, false, rng, 1.5f), ConfigError);
    // a cell whose step returns the wrong number of state parts or a wrong shape is named
    struct Bad : Cell {
        Parameter w{"w", Array({4, 3})};
        explicit Bad(const CellSpec&, Rng&) {}
        std::size_t input_size() const override { return 3; }
        std::size_t hidden_size() const override { return 4; }
        std::vector<StatePart> state_parts() const override { return {{"h", 4}, {"c", 4}}; }
        StepOut step(const Step& at, Var x_t, const State& s) override {
            return State{tanh(matmul_t(x_t, at.tape().param(w)) + s[0])};
        }
        void collect(std::vector<Parameter*>& out) override { out.push_back(&w); }
    };
    Recurrent bad("b", cell_factory<Bad>(), 3, 4, 1, 0.0f, false, rng);
    CHECK_THROWS_WITH_AS(bad(c, t.constant({6, 3}, 0.0f), 2), doctest::Contains("returned 1 state parts, it declares 2"),
                         ShapeError);
    Embedding emb("e", 5, 2, rng);
    CHECK_THROWS_AS(emb(c, {5}), IndexError);
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
            s.cells[0][0].data()[n] = 0.1f * static_cast<float>(n + 1);
            if (s.cells[0].size() > 1) s.cells[0][1].data()[n] = -0.05f * static_cast<float>(n + 1);
        }
        Tape t;
        Rng drop;
        Ctx c{t, drop, false};
        const Array y = rnn(c, t.constant(x), B, s).y.value();
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
    // the order must be a permutation of [0, V): out of range or repeated ranks are named
    std::vector<std::int32_t> bad = order;
    bad[4] = 1000000;
    CHECK_THROWS_WITH_AS(AdaptiveSoftmax("d", Hd, V, {3, 7}, 2.0f, rng, bad), doctest::Contains("rank 1000000"), ConfigError);
    bad = order;
    bad[4] = bad[5];
    CHECK_THROWS_WITH_AS(AdaptiveSoftmax("d", Hd, V, {3, 7}, 2.0f, rng, bad), doctest::Contains("a second time"), ConfigError);
}

TEST_CASE("adaptive input tied to the adaptive softmax: rows by hand, gradient check of the tied loss") {
    Rng rng(23);
    const std::size_t V = 12, Hd = 6;
    const std::vector<std::int32_t> order = frequency_order({3, 3, 3, 7, 7, 1, 0, 11, 5, 5, 5, 5}, V);
    AdaptiveSoftmax asm_("decoder", Hd, V, {3, 7}, 2.0f, rng, order);
    const Ids ids = {5, 11, 3, 9, 5, 2, 0, 8};  // shortlist, both clusters, a repeat, out of rank order
    Tape tape;
    const Array e = asm_.embed(tape, ids).value();
    REQUIRE(e.shape()[0] == ids.size());
    REQUIRE(e.shape()[1] == Hd);
    for (std::size_t i = 0; i < ids.size(); ++i) {  // each row computed directly from the weights
        const auto r = static_cast<std::size_t>(order[static_cast<std::size_t>(ids[i])]);
        for (std::size_t k = 0; k < Hd; ++k) {
            double want = 0.0;
            if (r < 3) {
                want = asm_.head.value(r, k);
            } else {
                const std::size_t c = r < 7 ? 0 : 1, row = r - (c == 0 ? 3 : 7);
                for (std::size_t j = 0; j < asm_.proj[c].value.shape()[0]; ++j)
                    want += static_cast<double>(asm_.out[c].value(row, j)) * asm_.proj[c].value(j, k);
            }
            CHECK(e(i, k) == doctest::Approx(want).epsilon(1e-6));
        }
    }
    // the tied model's loss: the softmax's weights get gradients through the input and the output both
    Parameter W("W", Array({Hd, Hd}));
    fill_uniform(W.value, rng, -0.5f, 0.5f);
    const Ids targets = {3, 5, 11, 0, 9, 7, 2, 5};
    auto loss = [&](Tape& t) { return asm_.loss(tanh(matmul_t(asm_.embed(t, ids), t.param(W))), targets, Reduction::sum); };
    std::vector<Parameter*> params = asm_.parameters();
    params.push_back(&W);
    const GradcheckReport r = gradcheck(tape, loss, params);
    fmt::print("{:<28} {}\n", "adaptive input, tied", r.summary());
    CHECK(r.ok);
    tape.clear();
    CHECK_THROWS_WITH_AS(asm_.embed(tape, {0, 12}), doctest::Contains("token id 12"), IndexError);
    CHECK(tape.size() == 0);
}
