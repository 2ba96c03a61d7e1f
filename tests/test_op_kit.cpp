// The op kit's worked example in docs/design.md compiles, is right, and is shown there verbatim.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <xtgrad/lib/error.hpp>
#include <xtgrad/tape/gradcheck.hpp>
#include <xtgrad/tape/ops.hpp>

#include "softplus_op.hpp"

using namespace xtgrad;

TEST_CASE("softplus, written outside the library with the kit: values, gradient check alone and used twice") {
    Tape t;
    Array x({1, 4});
    x(0, 0) = 0.0f;
    x(0, 1) = 2.0f;
    x(0, 2) = -30.0f;
    x(0, 3) = 30.0f;
    const Array y = my::softplus(t.constant(x)).value();
    CHECK(y(0, 0) == doctest::Approx(std::log(2.0)));
    CHECK(y(0, 1) == doctest::Approx(std::log1p(std::exp(2.0))));
    CHECK(y(0, 2) == doctest::Approx(std::exp(-30.0)).epsilon(1e-5));  // no cancellation
    CHECK(y(0, 3) == 30.0f);                                             // no overflow

    Rng rng(31);
    Parameter p("x", Array({3, 4}));
    fill_uniform(p.value, rng, -2.0f, 2.0f);
    const GradcheckReport alone =
        gradcheck(t, [&](Tape& t) { return random_projection(my::softplus(t.param(p)), 1); }, {&p});
    const GradcheckReport twice = gradcheck(
        t, [&](Tape& t) { return random_projection(my::softplus(t.param(p)) * t.param(p), 2); }, {&p});
    INFO(alone.summary());
    INFO(twice.summary());
    CHECK(alone.ok);
    CHECK(twice.ok);
    CHECK(alone.checked == 12);
}

TEST_CASE("softplus names itself on a bad input and records nothing") {
    Tape t;
    Var a = t.constant({2, 2}, 1.0f);
    t.clear();
    CHECK_THROWS_WITH_AS(my::softplus(a), doctest::Contains("softplus: stale Var"), Error);
    CHECK(t.size() == 0);
    CHECK_THROWS_WITH_AS(my::softplus(Var{}), doctest::Contains("softplus: empty Var"), Error);
}

TEST_CASE("docs/design.md shows tests/softplus_op.hpp verbatim") {
    const char* root = std::getenv("XTGRAD_SOURCE");
    REQUIRE_MESSAGE(root != nullptr, "XTGRAD_SOURCE must name the source tree (meson test sets it)");
    auto slurp = [](const std::string& path) {
        std::ifstream f(path);
        REQUIRE_MESSAGE(f.good(), "cannot read ", path);
        std::ostringstream s;
        s << f.rdbuf();
        return s.str();
    };
    const std::string doc = slurp(std::string(root) + "/docs/design.md");
    const std::string code = slurp(std::string(root) + "/tests/softplus_op.hpp");
    CHECK(doc.find("```cpp\n" + code + "```\n") != std::string::npos);
}
