// A primitive op written outside the library with the op kit: softplus.
#pragma once

#include <algorithm>
#include <cmath>

#include <xtgrad/tape/op_kit.hpp>

namespace my {

using namespace xtgrad;

// y = log(1 + exp(x))     dx += g sigmoid(x) = g (1 - exp(-y))        x: (M x N) -> (M x N)
inline Var softplus(Var x) {
    Tape& t = kit::tape_of("softplus", x);
    const Array& X = kit::val(t, x, "softplus");  // 1. read and check every input: nothing is recorded yet
    Node& y = t.record("softplus", {x}, [](Tape& t, Node& y) {  // 2. record the node and its backward rule
        const float *g = y.grad.data(), *v = y.value.data();
        kit::acc_map(t, y.in[0], [&](std::size_t k) { return -g[k] * std::expm1(-v[k]); });
    });
    Array& Y = kit::out(y, shape_of(X));  // 3. compute the forward value (stable for large |x|)
    for (std::size_t k = 0; k < X.size(); ++k) {
        const float v = X.data()[k];
        Y.data()[k] = std::max(v, 0.0f) + std::log1p(std::exp(-std::abs(v)));
    }
    return t.var(y);
}

}  // namespace my
