#include <xtgrad/layers/gru.hpp>

#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

StepOut GRUCell::step(const Step& at, Var x_t, const State& s) {
    const std::size_t H = hidden_size();
    Var hh = recurrent(at, s[0]);  // (B x 3H)
    Var r = sigmoid(cols(x_t, 0, H) + cols(hh, 0, H));
    Var z = sigmoid(cols(x_t, H, 2 * H) + cols(hh, H, 2 * H));
    Var n = tanh(cols(x_t, 2 * H, 3 * H) + r * cols(hh, 2 * H, 3 * H));
    at.probe("r", r);
    at.probe("z", z);
    at.probe("n", n);
    return State{n + z * (s[0] - n)};  // = (1 - z) * n + z * h
}

}  // namespace xtgrad
