// gradcheck tells the truth: correct recurrences with layer normalisation and with relu kinks pass by default,
// and backward rules that are wrong (by a factor, a sign, or by 1 %) fail, even inside those recurrences.
// The recurrences are unrolled by hand with plain tape ops (no Recurrent, no Cell).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>

#include <fmt/core.h>

#include <xtgrad/layers/layer_norm.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/lib/vmath.hpp>
#include <xtgrad/tape/gradcheck.hpp>
#include <xtgrad/tape/op_kit.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

Parameter uniform(const std::string& name, Shape s, float lo, float hi, Rng& rng) {
    Parameter p(name, Array(s));
    fill_uniform(p.value, rng, lo, hi);
    return p;
}

// ---- ops defined here with the kit: one right, three wrong

// y = tanh(x) with the rule's derivative multiplied by `factor` (1: right).
template <int PerMille>
Var tanh_scaled_rule(Var x) {
    return kit::unary("tanh_scaled_rule", x, vmath::tanh, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        const float f = static_cast<float>(PerMille) / 1000.0f;
        kit::acc_map(t, y.in[0], [&](std::size_t k) { return f * g[k] * (1.0f - v[k] * v[k]); });
    });
}

// y = x^2 with the rule dx += 3 g x (should be 2 g x).
Var square_wrong_factor(Var x) {
    return kit::unary(
        "square_wrong_factor", x, [](const float* x, float* y, std::size_t n) { vmath::pow(x, y, n, 2.0f); },
        [](Tape& t, Node& y) {
            const float *g = y.grad.data(), *x = t.at(y.in[0]).val().data();
            kit::acc_map(t, y.in[0], [&](std::size_t k) { return 3.0f * g[k] * x[k]; });
        });
}

// y = sigmoid(x) with the rule's sign flipped.
Var sigmoid_wrong_sign(Var x) {
    return kit::unary("sigmoid_wrong_sign", x, vmath::sigmoid, [](Tape& t, Node& y) {
        const float *g = y.grad.data(), *v = y.value.data();
        kit::acc_map(t, y.in[0], [&](std::size_t k) { return -g[k] * v[k] * (1.0f - v[k]); });
    });
}

using Unary = Var (*)(Var);

// ---- a layer-normalised LSTM (Ba et al. 2016) unrolled over T steps:
//   gates = LN_x(x W_x^T) + LN_h(h W_h^T) + b,  c' = f c + i g,  h' = o tanh(LN_c(c'))
// LN_x runs once on the whole window (T*B x 4H); LN_h and LN_c every step.
struct LnLstm {
    static constexpr std::size_t T = 4, B = 3, I = 4, H = 5;
    Rng rng{11};
    Parameter x = uniform("x", {T * B, I}, -1.0f, 1.0f, rng);
    Parameter Wx = uniform("W_x", {4 * H, I}, -0.5f, 0.5f, rng);
    Parameter Wh = uniform("W_h", {4 * H, H}, -0.5f, 0.5f, rng);
    Parameter b = uniform("b", {1, 4 * H}, -0.5f, 0.5f, rng);
    LayerNorm ln_x{"ln_x", 4 * H}, ln_h{"ln_h", 4 * H}, ln_c{"ln_c", H};
    Array h0 = Array({B, H}), c0 = Array({B, H});
    Unary cell_tanh = tanh;  // swapped for a wrong rule by one test

    LnLstm() {
        fill_uniform(h0, rng, -0.5f, 0.5f);
        fill_uniform(c0, rng, -0.5f, 0.5f);
        for (LayerNorm* ln : {&ln_x, &ln_h, &ln_c}) {  // not the identity init, so that every term matters
            fill_uniform(ln->weight.value, rng, 0.5f, 1.5f);
            fill_uniform(ln->bias.value, rng, -0.3f, 0.3f);
        }
    }
    std::vector<Parameter*> params() {
        std::vector<Parameter*> p{&x, &Wx, &Wh, &b};
        for (LayerNorm* ln : {&ln_x, &ln_h, &ln_c}) ln->collect(p);
        return p;
    }
    Var loss(Tape& t) {
        Var px = ln_x(matmul_t(t.param(x), t.param(Wx)));  // once per window
        Var h = t.borrow(h0), c = t.borrow(c0);
        std::vector<Var> hs;
        for (std::size_t s = 0; s < T; ++s) {
            Var gates = rows(px, s * B, (s + 1) * B) + ln_h(matmul_t(h, t.param(Wh))) + t.param(b);
            Var i = sigmoid(cols(gates, 0, H)), f = sigmoid(cols(gates, H, 2 * H));
            Var g = tanh(cols(gates, 2 * H, 3 * H)), o = sigmoid(cols(gates, 3 * H, 4 * H));
            c = f * c + i * g;
            h = o * cell_tanh(ln_c(c));
            hs.push_back(h);
        }
        return random_projection(concat_rows(hs), 5);
    }
};

// ---- an IndRNN (Li et al. 2018) unrolled over T steps: h' = relu(x W^T + u * h + b), u a per-unit weight.
struct IndRnn {
    static constexpr std::size_t T = 4, B = 3, I = 4, H = 6;
    Rng rng{12};
    Parameter x = uniform("x", {T * B, I}, -1.0f, 1.0f, rng);
    Parameter W = uniform("W", {H, I}, -0.7f, 0.7f, rng);
    Parameter u = uniform("u", {1, H}, -1.0f, 1.0f, rng);
    Parameter b = uniform("b", {1, H}, -0.2f, 0.2f, rng);
    Array h0 = Array({B, H});
    Unary act = relu;

    IndRnn() { fill_uniform(h0, rng, 0.0f, 1.0f); }
    std::vector<Parameter*> params() { return {&x, &W, &u, &b}; }
    Var loss(Tape& t) {
        Var px = affine(t.param(x), t.param(W), t.param(b));
        Var h = t.borrow(h0);
        std::vector<Var> hs;
        for (std::size_t s = 0; s < T; ++s) {
            h = act(rows(px, s * B, (s + 1) * B) + t.param(u) * h);
            hs.push_back(h);
        }
        return random_projection(concat_rows(hs), 6);
    }
};

template <class Net>
GradcheckReport check(Net& net, const GradcheckOptions& opt = {}) {
    Tape tape;
    return gradcheck(tape, [&](Tape& t) { return net.loss(t); }, net.params(), opt);
}

void show(const char* what, const GradcheckReport& r) { fmt::print("{}: {}\n{}", what, r.summary(), r.table()); }

}  // namespace

TEST_CASE("a correct layer-normalised LSTM passes the default gradcheck, every parameter checked") {
    LnLstm net;
    const GradcheckReport r = check(net);
    show("LN-LSTM", r);
    CHECK(r.ok);
    REQUIRE(r.params.size() == net.params().size());
    for (const GradcheckParam& p : r.params) {
        INFO(p.name);
        CHECK(p.ok);
        CHECK(p.checked > 0);
    }
}

TEST_CASE("a correct IndRNN (relu kinks) passes the default gradcheck; entries at kinks are skipped and counted") {
    IndRnn net;
    const GradcheckReport r = check(net);
    show("IndRNN", r);
    CHECK(r.ok);
    for (const GradcheckParam& p : r.params) {
        INFO(p.name);
        CHECK(p.ok);
        CHECK(p.checked > 0);
    }
}

TEST_CASE("the plain central difference (the check before issue 10) fails the same correct IndRNN at its kinks") {
    IndRnn net;
    GradcheckOptions old;
    old.richardson = false;
    old.eps = 1e-2f;
    old.tolerance = 1e-2;
    old.rel_floor = 0.0;
    const GradcheckReport r = check(net, old);
    show("IndRNN, plain central difference", r);
    CHECK_FALSE(r.ok);
    CHECK(r.max_rel_error > 0.1);  // a difference straddling a relu kink, not rounding
    CHECK(r.skipped == 0);
}

TEST_CASE("a wrong rule fails: off by a factor, by a sign, alone and inside a recurrence") {
    Rng rng(13);
    Parameter p = uniform("p", {3, 4}, -1.0f, 1.0f, rng);
    Tape tape;
    for (Unary op : {square_wrong_factor, sigmoid_wrong_sign}) {
        const GradcheckReport r = gradcheck(tape, [&](Tape& t) { return random_projection(op(t.param(p)), 3); }, {&p});
        show("wrong rule alone", r);
        CHECK_FALSE(r.ok);
        CHECK(r.max_rel_error > 0.3);
        CHECK(r.where.rfind("p[", 0) == 0);
    }
    IndRnn net;
    net.act = [](Var x) { return square_wrong_factor(relu(x)); };
    const GradcheckReport r = check(net);
    show("IndRNN with a wrong square", r);
    CHECK_FALSE(r.ok);
    CHECK(r.max_rel_error > 0.1);
}

TEST_CASE("a rule 1% off fails, alone and inside the layer-normalised LSTM; the same rule exact passes") {
    Rng rng(14);
    Parameter p = uniform("p", {3, 4}, -1.0f, 1.0f, rng);
    Tape tape;
    auto alone = [&](Unary op) {
        return gradcheck(tape, [&](Tape& t) { return random_projection(op(t.param(p)), 4); }, {&p});
    };
    const GradcheckReport good = alone(tanh_scaled_rule<1000>), bad = alone(tanh_scaled_rule<1010>);
    show("tanh exact", good);
    show("tanh 1% off", bad);
    CHECK(good.ok);
    CHECK_FALSE(bad.ok);

    LnLstm net;
    net.cell_tanh = tanh_scaled_rule<1000>;
    const GradcheckReport r_good = check(net);
    net.cell_tanh = tanh_scaled_rule<1010>;
    const GradcheckReport r_bad = check(net);
    show("LN-LSTM, kit tanh exact", r_good);
    show("LN-LSTM, kit tanh 1% off", r_bad);
    CHECK(r_good.ok);
    CHECK_FALSE(r_bad.ok);
    CHECK(r_bad.max_rel_error > 5e-3);
}

TEST_CASE("the estimate: Richardson removes the eps^2 term that the plain central difference keeps") {
    // loss = sum x^3: D(h) = 3 x^2 + h^2 exactly, and (4 D(h/2) - D(h)) / 3 = 3 x^2.
    Parameter p("p", Array({1, 3}));
    p.value(0, 0) = 0.5f;
    p.value(0, 1) = -0.8f;
    p.value(0, 2) = 1.1f;
    Tape tape;
    auto loss = [&](Tape& t) { return sum(pow(t.param(p), 3.0f)); };
    GradcheckOptions central;
    central.richardson = false;
    central.eps = 0.1f;
    central.tolerance = 1.0;  // report only
    const GradcheckReport c = gradcheck(tape, loss, {&p}, central);
    const double x = 0.5;     // p[0, 0] has the smallest gradient, so the largest relative error: the worst entry
    CHECK(c.where == "p[0, 0]");
    CHECK(c.numeric == doctest::Approx(3 * x * x + 0.01).epsilon(1e-4));
    CHECK(c.analytic == doctest::Approx(3 * x * x).epsilon(1e-6));
    GradcheckOptions rich;
    rich.eps = 0.1f;
    const GradcheckReport r = gradcheck(tape, loss, {&p}, rich);
    CHECK(r.ok);
    CHECK(r.max_rel_error < 1e-5);
    CHECK(r.skipped == 0);
}

TEST_CASE("an entry exactly at a kink is skipped and counted; the plain central difference fails it") {
    // relu'(0) = 0 on the tape, but every symmetric difference at 0 gives 1/2.
    Parameter p("p", Array({1, 4}));
    p.value(0, 0) = 0.0f;
    p.value(0, 1) = 0.7f;
    p.value(0, 2) = -0.6f;
    p.value(0, 3) = 0.3f;
    Tape tape;
    auto loss = [&](Tape& t) { return sum(relu(t.param(p))); };
    const GradcheckReport r = gradcheck(tape, loss, {&p});
    show("relu at 0", r);
    CHECK(r.ok);
    CHECK(r.skipped == 1);
    CHECK(r.checked == 3);
    REQUIRE(r.params.size() == 1);
    CHECK(r.params[0].skipped == 1);
    GradcheckOptions central;
    central.richardson = false;
    const GradcheckReport c = gradcheck(tape, loss, {&p}, central);
    CHECK_FALSE(c.ok);
    CHECK(c.where == "p[0, 0]");
    CHECK(c.numeric == doctest::Approx(0.5));
}

TEST_CASE("too many skipped entries fail the parameter: the check never passes on what it could not see") {
    Parameter p("p", Array({1, 4}, 0.0f));  // every entry at the kink
    Tape tape;
    const GradcheckReport r = gradcheck(tape, [&](Tape& t) { return sum(relu(t.param(p))); }, {&p});
    CHECK_FALSE(r.ok);
    CHECK(r.skipped == 4);
    CHECK(r.checked == 0);
    CHECK(r.summary().rfind("FAIL", 0) == 0);
}

TEST_CASE("the report names each parameter; a nondeterministic loss and bad options are errors") {
    IndRnn net;
    GradcheckOptions opt;
    opt.max_per_param = 3;
    const GradcheckReport r = check(net, opt);
    REQUIRE(r.params.size() == 4);
    CHECK(r.params[1].name == "W");
    CHECK(r.params[1].checked + r.params[1].skipped == 3);
    CHECK(r.checked + r.skipped == 12);
    CHECK(r.table().find("W ") != std::string::npos);

    Parameter p("p", Array({1, 2}, 0.5f));
    Tape tape;
    int calls = 0;
    auto drifting = [&](Tape& t) { return scale(sum(t.param(p)), 1.0f + static_cast<float>(++calls) * 1e-3f); };
    CHECK_THROWS_WITH_AS(gradcheck(tape, drifting, {&p}), doctest::Contains("deterministic"), Error);
    opt.eps = 0.0f;
    CHECK_THROWS_AS(gradcheck(tape, [&](Tape& t) { return sum(t.param(p)); }, {&p}, opt), ConfigError);
}

TEST_CASE("a loss known only as a float: differences lost in its rounding are never trusted") {
    // loss = 2048 + 1e-3 sum(x * W): the constant has no unrounded value, so the loss is rounded to float (ulp
    // 2.4e-4), and f(W + h) - f(W - h) is uncertain by that much: at the default steps it is mostly exactly 0. A correct rule must never be reported
    // wrong because of it: entries whose estimate drowns in the rounding are skipped, and every compared one agrees.
    Rng rng(31);
    Parameter W = uniform("W", {3, 4}, -1.0f, 1.0f, rng);
    const Parameter x = uniform("x", {3, 4}, -1.0f, 1.0f, rng);
    Tape tape;
    auto loss = [&](Tape& t) { return t.constant({1, 1}, 2048.0f) + 1e-3f * sum(t.borrow(x.value) * t.param(W)); };
    const GradcheckReport r = gradcheck(tape, loss, {&W});
    INFO(r.summary());
    CHECK(r.max_rel_error <= GradcheckOptions{}.tolerance);
    CHECK(r.skipped > 0);
    // with the unrounded loss the same check compares every entry
    auto exact_loss = [&](Tape& t) { return 1e-3f * sum(t.borrow(x.value) * t.param(W)); };
    const GradcheckReport e = gradcheck(tape, exact_loss, {&W});
    CHECK(e.ok);
    CHECK(e.skipped == 0);
}

TEST_CASE("scalar arithmetic on reductions keeps their unrounded value: a loss plus a penalty stays in double") {
    Rng rng(32);
    const Parameter a = uniform("a", {5, 7}, -1.0f, 1.0f, rng), b = uniform("b", {3, 3}, -1.0f, 1.0f, rng);
    Tape t;
    double sa = 0.0, sb = 0.0;
    for (float v : a.value) sa += v;
    for (float v : b.value) sb += static_cast<double>(v * v);  // the product is a float op, its mean in double
    const Var l = (sum(t.borrow(a.value)) + 0.5f * mean(t.borrow(b.value) * t.borrow(b.value))) / sum(t.borrow(a.value)) - 1.0f;
    const double want = (sa + 0.5 * (sb / 9.0)) / sa - 1.0;
    CHECK(t.node(l).f64 == doctest::Approx(want).epsilon(1e-12));
    CHECK(l.value()(0, 0) == static_cast<float>(t.node(l).f64));
    // a (1 x 1) value that is not a reduction's has none, and neither has anything made from it
    CHECK(std::isnan(t.node(t.constant({1, 1}, 2.0f) + sum(t.borrow(a.value))).f64));
}
