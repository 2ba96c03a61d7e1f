// tape/: handles, errors, no-grad, accumulation semantics, and forward values of the ops.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {
Array arr(std::size_t r, std::size_t c, std::initializer_list<float> v) {
    Array a({r, c});
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}
}  // namespace

TEST_CASE("a handle from a cleared tape throws instead of reading stale data") {
    Tape t;
    Parameter p("p", arr(1, 2, {1, 2}));
    Var x = t.param(p);
    Var y = tanh(x);
    t.clear();
    CHECK_THROWS_WITH_AS(y.value(), doctest::Contains("stale Var"), Error);
    CHECK_THROWS_WITH_AS(tanh(x), doctest::Contains("tanh: stale Var"), Error);
    Var z = t.param(p);  // same index as x, new recording
    CHECK(z.index == x.index);
    CHECK_THROWS_AS(add(x, z), Error);
}

TEST_CASE("a handle from another tape, or an empty one, is rejected") {
    Tape t1, t2;
    Var a = t1.constant({2, 2}, 1.0f);
    Var b = t2.constant({2, 2}, 1.0f);
    CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("another tape"), Error);
    CHECK_THROWS_AS(tanh(Var{}), Error);
}

TEST_CASE("shape errors name the op and the shapes") {
    Tape t;
    Var a = t.constant({2, 3}, 1.0f), b = t.constant({3, 2}, 1.0f), c = t.constant({4, 3}, 1.0f);
    CHECK_THROWS_WITH_AS(add(a, b), "add: shapes (2 x 3) and (3 x 2) do not broadcast (dim 0 is 2 vs 3)", ShapeError);
    CHECK_THROWS_WITH_AS(mul(a, c), doctest::Contains("mul: shapes (2 x 3) and (4 x 3)"), ShapeError);
    CHECK_THROWS_WITH_AS(matmul(a, a), "matmul: cannot multiply (2 x 3) by (2 x 3)", ShapeError);
    CHECK_THROWS_AS(matmul_t(a, b), ShapeError);
    CHECK_THROWS_WITH_AS(affine(a, b, t.constant({1, 3}, 0.0f)), doctest::Contains("affine: x (2 x 3) W (3 x 2)"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(concat_cols({a, c}), doctest::Contains("concat_cols: input 1 is (4 x 3)"), ShapeError);
    CHECK_THROWS_AS(concat_rows({a, b}), ShapeError);
    CHECK_THROWS_WITH_AS(cols(a, 1, 4), doctest::Contains("cols: column range [1, 4)"), IndexError);
    CHECK_THROWS_AS(rows(a, 2, 2), IndexError);
    CHECK_THROWS_WITH_AS(cross_entropy(a, {0}), doctest::Contains("1 targets for logits (2 x 3)"), ShapeError);
    Parameter p("p", arr(2, 2, {1, 2, 3, 4}));
    CHECK_THROWS_WITH_AS(t.backward(t.param(p)), doctest::Contains("must be (1 x 1)"), ShapeError);
}

TEST_CASE("out-of-range ids name the id and the bound") {
    Tape t;
    Var table = t.constant({5, 2}, 1.0f);
    CHECK_THROWS_WITH_AS(gather(table, {0, 5}), "gather: id 5 at position 1 is outside [0, 5) of table (5 x 2)",
                         IndexError);
    CHECK_THROWS_AS(gather(table, {-1}), IndexError);
    Var logits = t.constant({2, 4}, 0.0f);
    CHECK_THROWS_WITH_AS(cross_entropy(logits, {1, 7}),
                         "cross_entropy: target id 7 at position 1 is outside [0, 4) of logits (2 x 4)", IndexError);
    CHECK_THROWS_AS(cross_entropy(logits, {-3, 1}), IndexError);
    Rng rng(1);
    CHECK_THROWS_AS(dropout(logits, 1.0f, rng), ConfigError);
    CHECK_THROWS_AS(dropout(logits, -0.1f, rng), ConfigError);
}

TEST_CASE("no-grad records no backward rule and backward refuses to run") {
    Tape t;
    Parameter W("W", arr(2, 2, {1, 2, 3, 4}));
    {
        NoGrad ng(t);
        Var x = t.constant({1, 2}, 1.0f);
        Var y = sum(tanh(matmul(x, t.param(W))));
        CHECK(std::abs(y.value()(0, 0) - (std::tanh(4.0f) + std::tanh(6.0f))) < 1e-6);
        CHECK(t.recorded_ops() == 0);
        CHECK_THROWS_WITH_AS(t.backward(y), doctest::Contains("does not depend on any parameter"), Error);
    }
    CHECK(t.grad_enabled());
    t.clear();
    Var y = sum(matmul(t.constant({1, 2}, 1.0f), t.param(W)));
    CHECK(t.recorded_ops() == 2);
    t.backward(y);
    CHECK(W.grad(0, 0) == 1.0f);
}

TEST_CASE("constants carry no gradient; parameters accumulate across backward passes until zeroed") {
    Tape t;
    Parameter p("p", arr(1, 3, {1, 2, 3}));
    Var c = t.constant(arr(1, 3, {10, 20, 30}));
    Var loss = sum(mul(t.param(p), c));
    t.backward(loss);
    CHECK(p.grad == arr(1, 3, {10, 20, 30}));
    CHECK(t.node(c).requires_grad == false);
    t.clear();
    t.backward(sum(mul(t.param(p), t.constant(arr(1, 3, {10, 20, 30})))));
    CHECK(p.grad == arr(1, 3, {20, 40, 60}));
    p.zero_grad();
    CHECK(p.grad == arr(1, 3, {0, 0, 0}));
}

TEST_CASE("an input used twice gets both contributions") {
    Tape t;
    Parameter p("p", arr(1, 2, {3, -2}));
    Var x = t.param(p);
    t.backward(sum(add(mul(x, x), x)));  // d/dx (x^2 + x) = 2x + 1
    CHECK(p.grad == arr(1, 2, {7, -3}));
}

TEST_CASE("detach copies the value out: it survives clear()") {
    Tape t;
    Var y = t.constant(arr(1, 2, {4, 5}));
    Array kept = detach(y);
    t.clear();
    Var z = t.constant(arr(1, 2, {0, 0}));
    (void)z;
    CHECK(kept == arr(1, 2, {4, 5}));
}

TEST_CASE("forward values: broadcasting, slices, joins, softmax, cross-entropy") {
    Tape t;
    Var a = t.constant(arr(2, 3, {1, 2, 3, 4, 5, 6}));
    Var row = t.constant(arr(1, 3, {10, 20, 30}));
    Var col = t.constant(arr(2, 1, {100, 200}));
    CHECK(add(a, row).value() == arr(2, 3, {11, 22, 33, 14, 25, 36}));
    CHECK(sub(a, col).value() == arr(2, 3, {-99, -98, -97, -196, -195, -194}));
    CHECK(mul(row, a).value() == arr(2, 3, {10, 40, 90, 40, 100, 180}));
    CHECK((1.0f - a).value() == arr(2, 3, {0, -1, -2, -3, -4, -5}));
    CHECK(cols(a, 1, 3).value() == arr(2, 2, {2, 3, 5, 6}));
    CHECK(rows(a, 1, 2).value() == arr(1, 3, {4, 5, 6}));
    CHECK(concat_cols({a, col}).value() == arr(2, 4, {1, 2, 3, 100, 4, 5, 6, 200}));
    CHECK(concat_rows({a, row}).value() == arr(3, 3, {1, 2, 3, 4, 5, 6, 10, 20, 30}));
    CHECK(gather(a, {1, 1, 0}).value() == arr(3, 3, {4, 5, 6, 4, 5, 6, 1, 2, 3}));
    CHECK(sum(a).value()(0, 0) == 21.0f);
    CHECK(mean(a).value()(0, 0) == 3.5f);
    CHECK(relu(a - 3.0f).value() == arr(2, 3, {0, 0, 0, 1, 2, 3}));

    Var W = t.constant(arr(2, 3, {1, 0, 0, 0, 1, 1}));  // (out 2 x in 3)
    Var b = t.constant(arr(1, 2, {0.5f, -0.5f}));
    CHECK(affine(a, W, b).value() == arr(2, 2, {1.5f, 4.5f, 4.5f, 10.5f}));
    CHECK(matmul_t(a, W).value() == arr(2, 2, {1, 5, 4, 11}));

    const Array sm = softmax(a).value();
    for (int r = 0; r < 2; ++r) CHECK(sm(r, 0) + sm(r, 1) + sm(r, 2) == doctest::Approx(1.0));
    const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
    CHECK(log_softmax(a).value()(0, 0) == doctest::Approx(1.0 - lse0));
    // rows 0 and 1 have the same shifted logits: loss = lse0 - x[t]
    const double l0 = lse0 - 3.0, l1 = lse0 - 1.0;  // row 0 target 2, row 1 target 0 (shifted by 3)
    CHECK(cross_entropy(a, {2, 0}).value()(0, 0) == doctest::Approx((l0 + l1) / 2).epsilon(1e-6));
    CHECK(cross_entropy(a, {2, 0}, Reduction::sum).value()(0, 0) == doctest::Approx(l0 + l1).epsilon(1e-6));
    CHECK(cross_entropy(a, {2, -1}).value()(0, 0) == doctest::Approx(l0).epsilon(1e-6));
    CHECK(cross_entropy(a, {-100, 0}, Reduction::mean, -100).value()(0, 0) == doctest::Approx(l1).epsilon(1e-6));
}

TEST_CASE("dropout: mask from the explicit generator, inverted scaling, p = 0 is the identity") {
    Tape t;
    Var x = t.constant({200, 50}, 1.0f);
    Rng r1(7), r2(7);
    const Array y1 = dropout(x, 0.3f, r1).value();
    const Array y2 = dropout(x, 0.3f, r2).value();
    CHECK(y1 == y2);
    std::size_t zeros = 0;
    for (float v : y1) {
        CHECK((v == 0.0f || std::abs(v - 1.0f / 0.7f) < 1e-6));
        zeros += v == 0.0f;
    }
    CHECK(static_cast<double>(zeros) / y1.size() == doctest::Approx(0.3).epsilon(0.05));
    CHECK(dropout(x, 0.0f, r1).index == x.index);
}

TEST_CASE("cross_entropy backward is softmax minus one-hot, scaled by the mean, zero on ignored rows") {
    Tape t;
    Parameter L("logits", arr(2, 3, {0.1f, 0.2f, 0.3f, 1.0f, -1.0f, 0.0f}));
    t.backward(cross_entropy(t.param(L), {1, -1}));
    Array expect({2, 3});
    const float z = std::exp(0.1f) + std::exp(0.2f) + std::exp(0.3f);
    expect(0, 0) = std::exp(0.1f) / z;
    expect(0, 1) = std::exp(0.2f) / z - 1.0f;
    expect(0, 2) = std::exp(0.3f) / z;
    expect(1, 0) = expect(1, 1) = expect(1, 2) = 0.0f;
    CHECK(xt::allclose(L.grad, expect, 1e-5, 1e-6));
}

TEST_CASE("profiling charges each op's forward and backward time to 'op (rows x cols)'") {
    Tape t;
    Parameter W("W", Array({3, 4}, 0.5f));
    t.set_profiling(true);
    for (int k = 0; k < 3; ++k) {
        t.clear();
        Var y = sum(tanh(matmul_t(t.constant({2, 4}, 1.0f), t.param(W))));
        t.backward(y);
    }
    t.set_profiling(false);
    const auto& p = t.profile();
    REQUIRE(p.count("matmul_t (2 x 3)") == 1);
    CHECK(p.at("matmul_t (2 x 3)").calls == 3);
    CHECK(p.at("tanh (2 x 3)").backward_s > 0.0);
    CHECK(p.at("sum (1 x 1)").calls == 3);
    CHECK(p.at("constant (2 x 4)").backward_s == 0.0);  // leaves have no rule
    t.reset_profile();
    CHECK(t.profile().empty());
}

TEST_CASE("an op that throws leaves the tape exactly as it was: inputs are checked before recording") {
    Tape t;
    Var a = t.constant({2, 3}, 1.0f), b = t.constant({3, 2}, 1.0f), col = t.constant({2, 1}, 1.0f);
    Var half = t.constant(arr(2, 3, {1, 0, 0.5f, 1, 0, 0}));
    Var bias3 = t.constant({1, 3}, 0.0f), sq = t.constant({2, 2}, 1.0f);
    Tape other;
    Var foreign = other.constant({2, 3}, 1.0f);
    Rng rng(1);
    const std::vector<std::pair<const char*, std::function<void()>>> bad = {
        {"matmul", [&] { matmul(a, a); }},
        {"matmul_t", [&] { matmul_t(a, b); }},
        {"affine", [&] { affine(a, b, bias3); }},
        {"add", [&] { add(a, b); }},
        {"sub", [&] { sub(a, b); }},
        {"mul", [&] { mul(a, b); }},
        {"div", [&] { div(a, b); }},
        {"foreign input", [&] { add(a, foreign); }},
        {"concat_cols", [&] { concat_cols({a, b}); }},
        {"concat_rows", [&] { concat_rows({a, b}); }},
        {"cols", [&] { cols(a, 2, 5); }},
        {"rows", [&] { rows(a, 1, 1); }},
        {"gather", [&] { gather(a, {0, 2}); }},
        {"dropout", [&] { dropout(a, 1.5f, rng); }},
        {"dropout_mask", [&] { dropout_mask(t, {2, 2}, -1.0f, rng); }},
        {"cross_entropy count", [&] { cross_entropy(a, {0}); }},
        {"cross_entropy id", [&] { cross_entropy(a, {0, 3}); }},
        {"sum axis", [&] { sum(a, 2); }},
        {"mean axis", [&] { mean(a, -1); }},
        {"max axis", [&] { max(a, 5); }},
        {"pow", [&] { pow(a, std::nanf("")); }},
        {"block_dot rows", [&] { block_dot(a, b); }},
        {"block_dot width", [&] { block_dot(sq, a); }},
        {"block_mix", [&] { block_mix(sq, a); }},
        {"where mask values", [&] { where(half, a, a); }},
        {"where shapes", [&] { where(col, a, b); }},
        {"masked_fill", [&] { masked_fill(a, half, 0.0f); }},
        {"masked_fill shape", [&] { masked_fill(col, a, 0.0f); }},
        {"masked_sum", [&] { masked_sum(a, b); }},
        {"masked_mean", [&] { masked_mean(a, half); }},
    };
    for (const auto& [name, f] : bad) {
        const std::size_t before = t.size();
        INFO(std::string(name));
        CHECK_THROWS_AS(f(), Error);
        CHECK(t.size() == before);
    }
}

TEST_CASE("errors of the new ops name the op, the shapes and the bad entry") {
    Tape t;
    Var a = t.constant({2, 3}, 1.0f);
    CHECK_THROWS_WITH_AS(sum(a, 2), doctest::Contains("sum_axis: axis 2 is neither 0"), ShapeError);
    CHECK_THROWS_WITH_AS(block_dot(t.constant({2, 2}, 1.0f), a),
                         "block_dot: query (2 x 2) and memory (2 x 3) do not fit (want the same rows and memory "
                         "columns a multiple of 2)",
                         ShapeError);
    CHECK_THROWS_WITH_AS(where(t.constant(arr(1, 2, {1, 0.5f})), t.constant({1, 2}, 0.0f), t.constant({1, 2}, 0.0f)),
                         "where: mask entry [0, 1] of (1 x 2) is 0.5, not 0 or 1", Error);
    CHECK_THROWS_WITH_AS(masked_mean(a, t.constant({3, 1}, 1.0f)),
                         doctest::Contains("masked_mean: shapes (2 x 3) and (3 x 1) do not broadcast"), ShapeError);
}

TEST_CASE("forward values and gradients of the new ops, against hand-computed results") {
    Tape t;
    Var a = t.constant(arr(2, 3, {1, 2, 3, 4, 5, 6}));
    CHECK(div(a, t.constant(arr(1, 3, {1, 2, 4}))).value() == arr(2, 3, {1, 1, 0.75f, 4, 2.5f, 1.5f}));
    CHECK((a / 2.0f).value() == arr(2, 3, {0.5f, 1, 1.5f, 2, 2.5f, 3}));
    CHECK(sqrt(t.constant(arr(1, 2, {4, 9}))).value() == arr(1, 2, {2, 3}));
    CHECK(rsqrt(t.constant(arr(1, 2, {4, 16}))).value() == arr(1, 2, {0.5f, 0.25f}));
    CHECK(pow(t.constant(arr(1, 3, {-2, 3, 0.5f})), 3.0f).value() == arr(1, 3, {-8, 27, 0.125f}));
    CHECK(pow(t.constant(arr(1, 2, {4, 0.25f})), -0.5f).value() == arr(1, 2, {0.5f, 2}));
    CHECK(pow(t.constant(arr(1, 2, {-3, 5})), 0.0f).value() == arr(1, 2, {1, 1}));
    CHECK(square(a).value() == arr(2, 3, {1, 4, 9, 16, 25, 36}));
    CHECK(std::abs(pow(t.constant(arr(1, 1, {2})), 1.5f).value()(0, 0) - 2.8284271f) < 1e-6f);
    CHECK(transpose(a).value() == arr(3, 2, {1, 4, 2, 5, 3, 6}));
    CHECK(sum(a, 1).value() == arr(2, 1, {6, 15}));
    CHECK(sum(a, 0).value() == arr(1, 3, {5, 7, 9}));
    CHECK(mean(a, 1).value() == arr(2, 1, {2, 5}));
    CHECK(mean(a, 0).value() == arr(1, 3, {2.5f, 3.5f, 4.5f}));
    // block products: q (2 x 2), memory of k = 3 states of width 2
    Var q = t.constant(arr(2, 2, {1, 2, -1, 1}));
    Var m = t.constant(arr(2, 6, {1, 0, 0, 1, 2, 2, 3, 1, 1, 1, -2, 0}));
    CHECK(block_dot(q, m).value() == arr(2, 3, {1, 2, 6, -2, 0, 2}));
    CHECK(block_dot(q, q).value() == arr(2, 1, {5, 2}));  // k = 1: per-row dot product
    Var w = t.constant(arr(2, 3, {1, 0.5f, 0, 0, 1, 2}));
    CHECK(block_mix(w, m).value() == arr(2, 2, {1, 0.5f, -3, 1}));
    // selection copies exactly, even next to values that would poison arithmetic
    const float inf = std::numeric_limits<float>::infinity();
    Var poisoned = t.constant(arr(2, 3, {inf, inf, inf, 7, 8, 9}));
    Var rowmask = t.constant(arr(2, 1, {0, 1}));
    CHECK(where(rowmask, poisoned, a).value() == arr(2, 3, {1, 2, 3, 7, 8, 9}));
    CHECK(where(t.constant(arr(1, 3, {1, 0, 1})), a, t.constant({1, 1}, -1.0f)).value() ==
          arr(2, 3, {1, -1, 3, 4, -1, 6}));
    CHECK(masked_fill(poisoned, t.constant(arr(2, 1, {1, 0})), 0.0f).value() == arr(2, 3, {0, 0, 0, 7, 8, 9}));
    CHECK(masked_sum(poisoned, rowmask).value()(0, 0) == 24.0f);
    CHECK(masked_mean(a, t.constant(arr(2, 3, {1, 0, 1, 0, 0, 1}))).value()(0, 0) == doctest::Approx(10.0 / 3));
    CHECK(masked_mean(a, t.constant({2, 1}, 0.0f)).value()(0, 0) == 0.0f);  // nothing selected

    // gradients: max goes to the first maximum; masks pass g exactly where they select
    Parameter p("p", arr(2, 3, {3, 1, 3, 0, 5, 5}));
    t.clear();
    Var x = t.param(p);
    Var mx = max(x, 1);
    CHECK(mx.value() == arr(2, 1, {3, 5}));
    t.backward(sum(mx));
    CHECK(p.grad == arr(2, 3, {1, 0, 0, 0, 1, 0}));
    p.zero_grad();
    t.clear();
    t.backward(sum(max(t.param(p), 0)));
    CHECK(p.grad == arr(2, 3, {1, 0, 0, 0, 1, 1}));
    p.zero_grad();
    t.clear();
    x = t.param(p);
    Var sel = where(t.constant(arr(2, 1, {1, 0})), x, square(x));
    t.backward(sum(sel));  // row 0: d x = 1, row 1: d x^2 = 2x
    CHECK(p.grad == arr(2, 3, {1, 1, 1, 0, 10, 10}));
    p.zero_grad();
    t.clear();
    t.backward(masked_mean(t.param(p), t.constant(arr(1, 3, {0, 1, 1}))));  // 4 entries selected
    CHECK(p.grad == arr(2, 3, {0, 0.25f, 0.25f, 0, 0.25f, 0.25f}));
}

TEST_CASE("full reductions keep the loss in double for gradcheck") {
    Tape t;
    Array big({1, 3});
    big(0, 0) = 1e8f;
    big(0, 1) = 1.0f;
    big(0, 2) = -1e8f;
    Var s = sum(t.constant(big));
    CHECK(t.node(s).f64 == 1.0);
    CHECK(std::isnan(t.node(t.constant(big)).f64));
}

TEST_CASE("borrow reads an array in place: no copy, no gradient, the caller keeps it alive") {
    Array a = arr(2, 2, {1, 2, 3, 4});
    Parameter p("p", arr(2, 2, {1, 1, 1, 1}));
    Tape t;
    Var b = t.borrow(a);
    CHECK(&b.value() == &a);
    CHECK_FALSE(t.node(b).requires_grad);
    a(0, 0) = 10.0f;  // read where it lives
    CHECK(b.value()(0, 0) == 10.0f);
    Var y = sum(mul(t.param(p), b));
    t.backward(y);
    CHECK(p.grad == arr(2, 2, {10, 2, 3, 4}));
    CHECK(t.grad(b) == arr(2, 2, {0, 0, 0, 0}));
    CHECK(a == arr(2, 2, {10, 2, 3, 4}));  // untouched by backward
    t.clear();
    CHECK_THROWS_AS(b.value(), Error);
    CHECK(&t.borrow(a).value() == &a);
}

namespace {
// dW[k, n] = sum_t sum_b A_t[b, k] B_t[b, n] in double: the undeferred product, written out.
Array sum_of_products(const std::vector<Array>& As, const std::vector<Array>& Bs) {
    const std::size_t K = As[0].shape()[1], N = Bs[0].shape()[1];
    std::vector<double> acc(K * N, 0.0);
    for (std::size_t s = 0; s < As.size(); ++s)
        for (std::size_t b = 0; b < As[s].shape()[0]; ++b)
            for (std::size_t k = 0; k < K; ++k)
                for (std::size_t n = 0; n < N; ++n) acc[k * N + n] += double(As[s](b, k)) * Bs[s](b, n);
    Array r({K, N});
    for (std::size_t k = 0; k < K * N; ++k) r.data()[k] = static_cast<float>(acc[k]);
    return r;
}

Array random_array(Shape s, Rng& rng) {
    Array a(s);
    fill_uniform(a, rng, -1.0f, 1.0f);
    return a;
}
}  // namespace

TEST_CASE("weight-gradient stacking: matmul(h, W) and matmul_t(h, W) on a parameter, one sgemm per weight") {
    constexpr std::size_t T = 5, B = 3, K = 4, N = 6;
    Rng rng(21);
    Parameter W("W", random_array({K, N}, rng)), V("V", random_array({N, K}, rng));
    std::vector<Array> hs, seeds;
    for (std::size_t s = 0; s < T; ++s) {
        hs.push_back(random_array({B, K}, rng));
        seeds.push_back(random_array({B, N}, rng));
    }
    Tape t;
    std::vector<Var> outs;
    for (std::size_t s = 0; s < T; ++s) {  // a fresh leaf per step, as layers record them
        outs.push_back(matmul(t.borrow(hs[s]), t.param(W)));
        outs.push_back(matmul_t(t.borrow(hs[s]), t.param(V)));
    }
    Array seed({2 * T * B, N});
    for (std::size_t s = 0; s < T; ++s) {
        std::copy(seeds[s].begin(), seeds[s].end(), seed.data() + 2 * s * B * N);
        std::copy(seeds[s].begin(), seeds[s].end(), seed.data() + (2 * s + 1) * B * N);
    }
    t.backward(concat_rows(outs), seed);
    CHECK(t.stacking_stats().products == 2 * T);
    CHECK(t.stacking_stats().gemms == 2);
    CHECK(t.stacking_stats().stacked == 2);
    CHECK(xt::allclose(W.grad, sum_of_products(hs, seeds), 1e-5, 1e-5));           // dW = sum h^T g
    CHECK(xt::allclose(V.grad, sum_of_products(seeds, hs), 1e-5, 1e-5));           // dV = sum g^T h
}

TEST_CASE("weight-gradient stacking on a computed weight (DropConnect once per window), flushed before its rule") {
    constexpr std::size_t T = 4, B = 2, K = 3, N = 5;
    Rng rng(22);
    Parameter W("W", random_array({N, K}, rng));
    Array dropmask = random_array({N, K}, rng);
    for (float& v : dropmask) v = v > 0.0f ? 2.0f : 0.0f;
    Array direct = random_array({N, K}, rng);  // a second, immediate use of the same computed weight
    std::vector<Array> hs, seeds;
    for (std::size_t s = 0; s < T; ++s) {
        hs.push_back(random_array({B, K}, rng));
        seeds.push_back(random_array({B, N}, rng));
    }
    Tape t;
    Var Wd = mul(t.param(W), t.borrow(dropmask));  // once per window, used by every step
    Var loss = sum(mul(Wd, t.borrow(direct)));
    for (std::size_t s = 0; s < T; ++s)
        loss = loss + sum(mul(matmul_t(t.borrow(hs[s]), Wd), t.borrow(seeds[s])));
    t.backward(loss);
    CHECK(t.stacking_stats().products == T);
    CHECK(t.stacking_stats().gemms == 1);
    const Array expect = (sum_of_products(seeds, hs) + direct) * dropmask;
    CHECK(xt::allclose(W.grad, expect, 1e-5, 1e-5));
    // the computed weight's own gradient holds the stacked products too
    CHECK(xt::allclose(t.grad(Wd), sum_of_products(seeds, hs) + direct, 1e-5, 1e-5));
}

TEST_CASE("what does not stack: a weight on the left (W x), and products over many rows") {
    Rng rng(23);
    Parameter W("W", random_array({3, 4}, rng));
    Array x = random_array({4, 2}, rng), big = random_array({100, 3}, rng);
    Tape t;
    t.backward(sum(matmul(t.param(W), t.borrow(x))));
    CHECK(t.stacking_stats().products == 0);
    t.clear();
    W.zero_grad();
    t.backward(sum(matmul(t.borrow(big), t.param(W))));  // 100 rows: one sgemm of its own, right away
    CHECK(t.stacking_stats().products == 0);
    Array colsum({1, 3}, 0.0f);
    for (std::size_t r = 0; r < 100; ++r)
        for (std::size_t c = 0; c < 3; ++c) colsum(0, c) += big(r, c);
    for (std::size_t k = 0; k < 3; ++k)
        for (std::size_t n = 0; n < 4; ++n) CHECK(W.grad(k, n) == doctest::Approx(colsum(0, k)).epsilon(1e-5));
}
