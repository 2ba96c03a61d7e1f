// Every op is gradient-checked against central differences, alone and with an input used twice.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>

#include <fmt/core.h>

#include <xtgrad/lib/parallel.hpp>
#include <xtgrad/optim/clip.hpp>
#include <xtgrad/tape/gradcheck.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {

// How a case fills its inputs.
enum class Fill { any, positive, away_from_zero, distinct };

struct Case {
    const char* name;
    std::vector<Shape> shapes;
    std::function<Var(const std::vector<Var>&)> f;
    Fill fill = Fill::any;
    double tolerance = 2e-3;
};

Array make_input(Shape s, Fill fill, Rng& rng) {
    Array a(s);
    if (fill == Fill::distinct) {  // a shuffled ramp: no two entries closer than 0.3 (max has no near-ties)
        for (std::size_t k = 0; k < a.size(); ++k) a.data()[k] = 0.3f * static_cast<float>(k) - 1.0f;
        for (std::size_t k = a.size(); k > 1; --k) std::swap(a.data()[k - 1], a.data()[rng.next_u64() % k]);
        return a;
    }
    for (float& v : a) {
        const float u = rng.uniform(-1.0f, 1.0f);
        switch (fill) {
            case Fill::any: v = u; break;
            case Fill::positive: v = 0.5f + std::abs(u); break;
            case Fill::away_from_zero: v = (u < 0 ? -0.2f : 0.2f) + u; break;
            case Fill::distinct: break;  // filled above
        }
    }
    return a;
}

// A constant 0/1 mask of the given shape with the given entries (row-major).
Var mask(Var like, Shape s, std::initializer_list<float> v) {
    Array m(s);
    std::copy(v.begin(), v.end(), m.begin());
    return like.tape->constant(m);
}

Rng& dropout_rng() {
    static Rng rng;
    return rng;
}

std::vector<Case> cases() {
    using V = const std::vector<Var>&;
    return {
        {"add", {{3, 4}, {3, 4}}, [](V x) { return add(x[0], x[1]); }},
        {"add row-broadcast", {{3, 4}, {1, 4}}, [](V x) { return add(x[0], x[1]); }},
        {"add col-broadcast", {{3, 1}, {3, 4}}, [](V x) { return add(x[0], x[1]); }},
        {"add(x, x)", {{3, 4}}, [](V x) { return add(x[0], x[0]); }},
        {"sub", {{3, 4}, {1, 4}}, [](V x) { return sub(x[0], x[1]); }},
        {"sub(x, x*x)", {{3, 4}}, [](V x) { return sub(x[0], mul(x[0], x[0])); }},
        {"mul", {{3, 4}, {3, 4}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul row-broadcast", {{3, 4}, {1, 4}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul scalar-broadcast", {{1, 1}, {3, 4}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul(x, x)", {{3, 4}}, [](V x) { return mul(x[0], x[0]); }},
        {"addcmul", {{3, 4}, {3, 4}, {3, 4}}, [](V x) { return addcmul(x[0], x[1], x[2]); }},
        {"addcmul row, full, row", {{1, 4}, {3, 4}, {1, 4}}, [](V x) { return addcmul(x[0], x[1], x[2]); }},
        {"addcmul col, row, full", {{3, 1}, {1, 4}, {3, 4}}, [](V x) { return addcmul(x[0], x[1], x[2]); }},
        {"addcmul(x, x, x)", {{3, 4}}, [](V x) { return addcmul(x[0], x[0], x[0]); }},
        {"addcmul col, full, col", {{2, 70}, {2, 1}, {2, 1}}, [](V x) { return addcmul(x[1], x[0], x[2]); }},
        // rows of 64 and more, an operand broadcast: both gradients in one sweep over g (binary_backward of two inputs)
        {"add wide", {{2, 70}, {2, 70}}, [](V x) { return add(x[0], x[1]); }},
        {"sub wide, col-broadcast", {{2, 70}, {2, 1}}, [](V x) { return sub(x[0], x[1]); }},
        {"mul wide, col-broadcast", {{2, 70}, {2, 1}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul wide, row-broadcast", {{1, 70}, {3, 70}}, [](V x) { return mul(x[0], x[1]); }},
        {"mul wide (x, x)", {{2, 70}}, [](V x) { return mul(x[0], x[0]); }},
        {"scale", {{3, 4}}, [](V x) { return scale(x[0], -1.7f); }},
        {"add_scalar", {{3, 4}}, [](V x) { return add_scalar(x[0], 0.3f); }},
        {"neg", {{3, 4}}, [](V x) { return neg(x[0]); }},
        {"1 - x (composed)", {{3, 4}}, [](V x) { return mul(1.0f - x[0], x[0]); }},
        {"matmul", {{3, 5}, {5, 4}}, [](V x) { return matmul(x[0], x[1]); }},
        {"matmul(x, x)", {{4, 4}}, [](V x) { return matmul(x[0], x[0]); }},
        {"matmul_t", {{3, 5}, {4, 5}}, [](V x) { return matmul_t(x[0], x[1]); }},
        {"matmul_t(x, x)", {{3, 5}}, [](V x) { return matmul_t(x[0], x[0]); }},
        {"affine", {{3, 5}, {4, 5}, {1, 4}}, [](V x) { return affine(x[0], x[1], x[2]); }},
        {"affine(x, x, b)", {{4, 4}, {1, 4}}, [](V x) { return affine(x[0], x[0], x[1]); }},
        {"sigmoid", {{3, 4}}, [](V x) { return sigmoid(x[0]); }},
        {"sigmoid(x) * x", {{3, 4}}, [](V x) { return mul(sigmoid(x[0]), x[0]); }},
        {"tanh", {{3, 4}}, [](V x) { return tanh(x[0]); }},
        {"tanh(x) + x", {{3, 4}}, [](V x) { return add(tanh(x[0]), x[0]); }},
        {"relu", {{3, 4}}, [](V x) { return relu(x[0]); }, Fill::away_from_zero},
        {"relu(x) * x", {{3, 4}}, [](V x) { return mul(relu(x[0]), x[0]); }, Fill::away_from_zero},
        {"exp", {{3, 4}}, [](V x) { return exp(x[0]); }},
        {"exp(x) * x", {{3, 4}}, [](V x) { return mul(exp(x[0]), x[0]); }},
        {"log", {{3, 4}}, [](V x) { return log(x[0]); }, Fill::positive},
        {"log(x) * x", {{3, 4}}, [](V x) { return mul(log(x[0]), x[0]); }, Fill::positive},
        {"sum", {{3, 4}}, [](V x) { return mul(sum(x[0]), sum(x[0])); }},
        {"mean", {{3, 4}}, [](V x) { return mul(mean(x[0]), sum(x[0])); }},
        {"cols", {{3, 6}}, [](V x) { return cols(x[0], 1, 4); }},
        {"cols twice", {{3, 6}}, [](V x) { return mul(cols(x[0], 0, 3), cols(x[0], 2, 5)); }},
        {"rows", {{5, 3}}, [](V x) { return rows(x[0], 1, 3); }},
        {"rows twice", {{5, 3}}, [](V x) { return mul(rows(x[0], 0, 2), rows(x[0], 1, 3)); }},
        {"concat_cols", {{3, 2}, {3, 4}}, [](V x) { return concat_cols({x[0], x[1], x[0]}); }},
        {"concat_rows", {{2, 3}, {4, 3}}, [](V x) { return concat_rows({x[0], x[1], x[0]}); }},
        {"gather", {{6, 3}}, [](V x) { return gather(x[0], {4, 0, 4, 2}); }},
        {"gather twice", {{6, 3}}, [](V x) { return mul(gather(x[0], {1, 2}), gather(x[0], {2, 1})); }},
        {"dropout",
         {{4, 5}},
         [](V x) {
             dropout_rng().reseed(5);
             return dropout(x[0], 0.4f, dropout_rng());
         }},
        {"dropout_mask shared",
         {{4, 5}, {4, 5}},
         [](V x) {
             dropout_rng().reseed(6);
             Var m = dropout_mask(*x[0].tape, {4, 5}, 0.5f, dropout_rng());
             return add(mul(x[0], m), mul(x[1], m));
         }},
        {"log_softmax", {{3, 5}}, [](V x) { return log_softmax(x[0]); }},
        {"log_softmax(x) * x", {{3, 5}}, [](V x) { return mul(log_softmax(x[0]), x[0]); }},
        {"softmax (composed)", {{3, 5}}, [](V x) { return softmax(x[0]); }},
        {"cross_entropy mean", {{4, 6}}, [](V x) { return cross_entropy(x[0], {5, 0, 3, 3}); }},
        {"cross_entropy sum, ignore", {{4, 6}},
         [](V x) { return cross_entropy(x[0], {5, -1, 3, 3}, Reduction::sum); }},
        {"cross_entropy(x) * x", {{4, 6}}, [](V x) { return mul(cross_entropy(x[0], {1, 2, 3, 4}), sum(x[0])); }},
        {"div", {{3, 4}, {3, 4}}, [](V x) { return div(x[0], x[1]); }, Fill::positive},
        {"div row-broadcast", {{3, 4}, {1, 4}}, [](V x) { return div(x[0], x[1]); }, Fill::positive},
        {"div col-broadcast", {{3, 4}, {3, 1}}, [](V x) { return div(x[0], x[1]); }, Fill::positive},
        {"div scalar-broadcast", {{1, 1}, {3, 4}}, [](V x) { return div(x[0], x[1]); }, Fill::positive},
        {"div(x, x * x)", {{3, 4}}, [](V x) { return div(x[0], mul(x[0], x[0])); }, Fill::positive},
        {"sqrt", {{3, 4}}, [](V x) { return sqrt(x[0]); }, Fill::positive},
        {"sqrt(x) * x", {{3, 4}}, [](V x) { return mul(sqrt(x[0]), x[0]); }, Fill::positive},
        {"rsqrt", {{3, 4}}, [](V x) { return rsqrt(x[0]); }, Fill::positive},
        {"rsqrt(x) * x", {{3, 4}}, [](V x) { return mul(rsqrt(x[0]), x[0]); }, Fill::positive},
        {"pow 2 (square)", {{3, 4}}, [](V x) { return square(x[0]); }},
        {"pow 3", {{3, 4}}, [](V x) { return pow(x[0], 3.0f); }},
        {"pow -2", {{3, 4}}, [](V x) { return pow(x[0], -2.0f); }, Fill::positive},
        {"pow 1.5", {{3, 4}}, [](V x) { return pow(x[0], 1.5f); }, Fill::positive},
        {"pow -0.5", {{3, 4}}, [](V x) { return pow(x[0], -0.5f); }, Fill::positive},
        {"pow(x, 2.5) * x", {{3, 4}}, [](V x) { return mul(pow(x[0], 2.5f), x[0]); }, Fill::positive},
        {"transpose", {{3, 5}}, [](V x) { return transpose(x[0]); }},
        {"transpose(x) x", {{3, 5}}, [](V x) { return matmul(transpose(x[0]), x[0]); }},
        {"transpose(x) + x", {{4, 4}}, [](V x) { return add(transpose(x[0]), mul(x[0], x[0])); }},
        {"sum axis 1", {{3, 5}}, [](V x) { return sum(x[0], 1); }},
        {"sum axis 0", {{3, 5}}, [](V x) { return sum(x[0], 0); }},
        {"sum(x, 1) * x", {{3, 5}}, [](V x) { return mul(sum(x[0], 1), x[0]); }},
        {"sum(x, 0) * x", {{3, 5}}, [](V x) { return mul(sum(x[0], 0), x[0]); }},
        {"mean axis 1", {{3, 5}}, [](V x) { return mean(x[0], 1); }},
        {"mean axis 0", {{3, 5}}, [](V x) { return mean(x[0], 0); }},
        {"x - mean(x, 1)", {{3, 5}}, [](V x) { return mul(sub(x[0], mean(x[0], 1)), x[0]); }},
        {"mean(x, 0) * x", {{3, 5}}, [](V x) { return mul(mean(x[0], 0), x[0]); }},
        {"var axis 1", {{3, 5}}, [](V x) { return var(x[0], 1); }},
        {"var axis 0", {{4, 3}}, [](V x) { return var(x[0], 0); }},
        {"var(x, 1) * x", {{3, 5}}, [](V x) { return mul(var(x[0], 1), x[0]); }},
        {"var(x, 0) * x", {{4, 3}}, [](V x) { return mul(var(x[0], 0), x[0]); }},
        {"max axis 1", {{3, 5}}, [](V x) { return max(x[0], 1); }, Fill::distinct},
        {"max axis 0", {{3, 5}}, [](V x) { return max(x[0], 0); }, Fill::distinct},
        {"max(x, 1) * x", {{3, 5}}, [](V x) { return mul(max(x[0], 1), x[0]); }, Fill::distinct},
        {"max(x, 0) * x", {{3, 5}}, [](V x) { return mul(max(x[0], 0), x[0]); }, Fill::distinct},
        {"block_dot", {{3, 4}, {3, 12}}, [](V x) { return block_dot(x[0], x[1]); }},
        {"block_dot k=1 (row dot)", {{3, 4}, {3, 4}}, [](V x) { return block_dot(x[0], x[1]); }},
        {"block_dot(x, x)", {{3, 4}}, [](V x) { return block_dot(x[0], x[0]); }},
        {"block_dot(q, [q m])", {{3, 4}, {3, 8}}, [](V x) { return block_dot(x[0], concat_cols({x[0], x[1]})); }},
        {"block_mix", {{3, 3}, {3, 12}}, [](V x) { return block_mix(x[0], x[1]); }},
        {"block_mix(w, [w w])", {{3, 2}}, [](V x) { return block_mix(x[0], concat_cols({x[0], x[0]})); }},
        {"attention (composed)",
         {{3, 4}, {3, 12}},
         [](V x) { return block_mix(softmax(block_dot(x[0], x[1])), x[1]); }},
        {"where",
         {{2, 3}, {2, 3}},
         [](V x) { return where(mask(x[0], {2, 3}, {1, 0, 0, 1, 1, 0}), x[0], x[1]); }},
        {"where row mask",
         {{3, 4}, {3, 4}},
         [](V x) { return where(mask(x[0], {3, 1}, {1, 0, 1}), x[0], x[1]); }},
        {"where broadcast b",
         {{3, 4}, {1, 4}},
         [](V x) { return where(mask(x[0], {3, 1}, {0, 1, 0}), x[0], x[1]); }},
        {"where(m, x, x * x)",
         {{2, 3}},
         [](V x) { return where(mask(x[0], {2, 3}, {1, 0, 0, 1, 1, 0}), x[0], mul(x[0], x[0])); }},
        {"masked_fill",
         {{3, 4}},
         [](V x) { return mul(masked_fill(x[0], mask(x[0], {3, 1}, {0, 1, 0}), 0.25f), x[0]); }},
        {"masked_sum",
         {{3, 4}},
         [](V x) { return masked_sum(x[0], mask(x[0], {3, 4}, {1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0})); }},
        {"masked_mean row mask",
         {{4, 3}},
         [](V x) { return mul(masked_mean(x[0], mask(x[0], {4, 1}, {1, 0, 1, 1})), sum(x[0])); }},
    };
}

}  // namespace

TEST_CASE("gradcheck: every op, and every op with an input used twice") {
    fmt::print("{:<28} {:>10} {:>10} {:>8}  worst at\n", "op", "rel err", "abs err", "skipped");
    int n = 0;
    for (const Case& c : cases()) {
        Rng rng(1000 + static_cast<std::uint64_t>(n++));
        std::vector<std::unique_ptr<Parameter>> owned;
        std::vector<Parameter*> params;
        for (std::size_t k = 0; k < c.shapes.size(); ++k) {
            owned.push_back(std::make_unique<Parameter>(fmt::format("x{}", k), make_input(c.shapes[k], c.fill, rng)));
            params.push_back(owned.back().get());
        }
        Tape tape;
        auto loss = [&](Tape& t) {
            std::vector<Var> xs;
            for (Parameter* p : params) xs.push_back(t.param(*p));
            const Var y = c.f(xs);
            return y.value().size() == 1 ? y : random_projection(y, 77);
        };
        GradcheckOptions opt;
        opt.tolerance = c.tolerance;
        opt.abs_floor = 1e-2;
        const GradcheckReport r = gradcheck(tape, loss, params, opt);
        fmt::print("{:<28} {:>10.2e} {:>10.2e} {:>8}  {}\n", c.name, r.max_rel_error, r.max_abs_error, r.skipped,
                   r.where);
        INFO(std::string(c.name), ": ", r.summary());
        CHECK(r.ok);
        CHECK(r.checked > 0);
        CHECK(r.skipped * 10 <= r.checked);  // inputs are kept away from kinks: (nearly) every entry is compared
    }
}

TEST_CASE("gradcheck catches a wrong gradient") {
    // A deliberately wrong rule, recorded through the public tape API, must fail the check.
    Parameter p("p", Array({1, 3}, 0.5f));
    Tape tape;
    auto loss = [&](Tape& t) {
        Var x = t.param(p);
        Node& y = t.record("wrong_square", {x}, [](Tape& t, Node& y) {
            Array& g = t.at(y.in[0]).gradbuf();
            for (std::size_t k = 0; k < g.size(); ++k) g.data()[k] += y.grad(0, 0) * 3.0f;  // should be 2 x
        });
        y.value = Array({1, 1}, 0.0f);
        for (float v : p.value) y.value(0, 0) += v * v;
        return t.var(y);
    };
    const GradcheckReport r = gradcheck(tape, loss, {&p});
    CHECK_FALSE(r.ok);
    CHECK(r.max_rel_error > 0.5);
    CHECK(r.where.rfind("p[0, ", 0) == 0);
}

TEST_CASE("cross_entropy and the gradient norm give the same bits on one thread or several") {
    // Big enough to be split across threads (rows of 20000 logits; a 300000-entry gradient).
    Rng rng(9);
    Parameter L("L", Array({64, 20000})), G("G", Array({1, 300000}));
    fill_uniform(L.value, rng, -5, 5);
    fill_uniform(G.grad, rng, -1, 1);
    Ids targets(64);
    for (std::size_t i = 0; i < 64; ++i) targets[i] = static_cast<std::int32_t>(rng.below(20000));
    targets[3] = -100;
    const std::size_t saved = parallel_threads();
    std::vector<float> loss;
    std::vector<Array> grads;
    std::vector<double> norms;
    for (std::size_t threads : {1, 2, 3}) {
        set_parallel_threads(threads);
        L.zero_grad();
        Tape t;
        Var l = cross_entropy(t.param(L), targets, Reduction::mean, -100);
        t.backward(l);
        loss.push_back(l.value()(0, 0));
        grads.push_back(L.grad);
        norms.push_back(grad_norm({&G}));
    }
    set_parallel_threads(saved);
    for (std::size_t k = 1; k < loss.size(); ++k) {
        CHECK(loss[k] == loss[0]);
        CHECK(grads[k] == grads[0]);
        CHECK(norms[k] == norms[0]);
    }
}
