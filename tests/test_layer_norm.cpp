// LayerNorm: PyTorch's names and initialisation, values against a double-precision reference, gradients.
#include <doctest/doctest.h>

#include <cmath>

#include <xtgrad/layers/layer_norm.hpp>
#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/gradcheck.hpp>
#include <xtgrad/tape/ops.hpp>

using namespace xtgrad;

namespace {
// y = (x - mean) / sqrt(var + eps) * w + b per row, in double.
Array reference(const Array& x, const Array& w, const Array& b, double eps) {
    Array y(x.shape());
    const std::size_t R = x.shape()[0], N = x.shape()[1];
    for (std::size_t r = 0; r < R; ++r) {
        double mu = 0.0, var = 0.0;
        for (std::size_t c = 0; c < N; ++c) mu += x(r, c);
        mu /= N;
        for (std::size_t c = 0; c < N; ++c) var += (x(r, c) - mu) * (x(r, c) - mu);
        var /= N;
        for (std::size_t c = 0; c < N; ++c)
            y(r, c) = static_cast<float>((x(r, c) - mu) / std::sqrt(var + eps) * w(0, c) + b(0, c));
    }
    return y;
}
}  // namespace

TEST_CASE("LayerNorm: PyTorch's parameter names, shapes and initialisation") {
    LayerNorm ln("rnn.ln_c", 5);
    const std::vector<Parameter*> p = ln.parameters();
    REQUIRE(p.size() == 2);
    CHECK(p[0]->name == "rnn.ln_c.weight");
    CHECK(p[1]->name == "rnn.ln_c.bias");
    CHECK(p[0]->export_shape == std::vector<std::size_t>{5});
    CHECK(ln.weight.value == Array({1, 5}, 1.0f));
    CHECK(ln.bias.value == Array({1, 5}, 0.0f));
    CHECK(ln.eps() == 1e-5f);
    CHECK(ln.features() == 5);
    CHECK_THROWS_AS(LayerNorm("bad", 0), ConfigError);
    CHECK_THROWS_AS(LayerNorm("bad", 3, 0.0f), ConfigError);
}

TEST_CASE("LayerNorm: values against a double reference; rows of equal entries give the bias") {
    Rng rng(41);
    LayerNorm ln("ln", 7);
    fill_uniform(ln.weight.value, rng, 0.5f, 1.5f);
    fill_uniform(ln.bias.value, rng, -0.5f, 0.5f);
    Array x({4, 7});
    fill_uniform(x, rng, -3.0f, 3.0f);
    for (std::size_t c = 0; c < 7; ++c) x(3, c) = 2.5f;  // zero variance
    Tape t;
    const Array y = ln(t.constant(x)).value();
    const Array want = reference(x, ln.weight.value, ln.bias.value, 1e-5);
    CHECK(xt::allclose(y, want, 1e-5, 1e-5));
    for (std::size_t c = 0; c < 7; ++c) CHECK(y(3, c) == doctest::Approx(ln.bias.value(0, c)));
    // unit gain and zero shift: each row has mean 0 and (biased) variance 1 - eps / var
    LayerNorm plain("plain", 7);
    const Array z = plain(t.constant(x)).value();
    for (std::size_t r = 0; r < 3; ++r) {
        double m = 0.0, v = 0.0;
        for (std::size_t c = 0; c < 7; ++c) m += z(r, c);
        for (std::size_t c = 0; c < 7; ++c) v += z(r, c) * z(r, c);
        CHECK(std::abs(m / 7) < 1e-6);
        CHECK(v / 7 == doctest::Approx(1.0).epsilon(1e-4));
    }
    CHECK_THROWS_WITH_AS(ln(t.constant({2, 6}, 1.0f)), doctest::Contains("LayerNorm 'ln.weight': input (2 x 6)"),
                         ShapeError);
}

TEST_CASE("LayerNorm: x r - m r (PyTorch's CPU arithmetic) is as accurate as (x - m) r, also far from zero") {
    Rng rng(43);
    LayerNorm ln("ln", 300);  // rows wider than 64: the one-sweep backward of the broadcasting ops
    fill_uniform(ln.weight.value, rng, 0.5f, 1.5f);
    fill_uniform(ln.bias.value, rng, -0.5f, 0.5f);
    auto err = [](const Array& a, const Array& b) { return xt::amax(xt::abs(a - b))(); };
    for (float offset : {0.0f, 10.0f, 100.0f, -1000.0f}) {
        Array x({3, 300});
        fill_uniform(x, rng, -1.0f, 1.0f);  // sd 0.58
        x += offset;
        Tape t;
        Var v = t.constant(x);
        const Array y = ln(v).value();
        Var d = v - mean(v, 1);
        const Array centred = (d * rsqrt(var(v, 1) + 1e-5f) * t.param(ln.weight) + t.param(ln.bias)).value();
        const Array want = reference(x, ln.weight.value, ln.bias.value, 1e-5);
        INFO("offset ", offset, ": LayerNorm ", err(y, want), ", centred ", err(centred, want));
        // both carry the float32 row mean's rounding; m r adds at most a rounding of |m| / sd
        CHECK(err(y, want) <= err(centred, want) + 1.5e-7 * std::abs(offset) / 0.58 + 1e-6);
        if (offset == 0.0f) CHECK(err(y, want) < 1e-6);
    }
}

TEST_CASE("LayerNorm: gradients of input, gain and shift, alone and with the input used twice") {
    Rng rng(42);
    LayerNorm ln("ln", 6);
    fill_uniform(ln.weight.value, rng, 0.5f, 1.5f);
    fill_uniform(ln.bias.value, rng, -0.5f, 0.5f);
    Parameter x("x", Array({3, 6}));
    fill_uniform(x.value, rng, -1.0f, 1.0f);
    std::vector<Parameter*> params = ln.parameters();
    params.push_back(&x);
    Tape tape;
    const GradcheckReport alone =
        gradcheck(tape, [&](Tape& t) { return random_projection(ln(t.param(x)), 1); }, params);
    const GradcheckReport twice =
        gradcheck(tape, [&](Tape& t) { return random_projection(ln(t.param(x)) * t.param(x), 2); }, params);
    INFO(alone.summary());
    INFO(twice.summary());
    CHECK(alone.ok);
    CHECK(twice.ok);
    CHECK(alone.skipped == 0);
}
