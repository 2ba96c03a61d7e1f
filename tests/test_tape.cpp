// tape/: handles, errors, no-grad, accumulation semantics, and forward values of the ops.
#include <doctest/doctest.h>

#include <cmath>

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
