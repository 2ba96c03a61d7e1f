#include <xtgrad/layers/lstm.hpp>

#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

StepOut LSTMCell::step(const Step& at, Var x_t, const State& s) {
    const std::size_t H = hidden_size();
    Var gates = x_t + recurrent(at, s[0]);  // (B x 4H)
    Var i = sigmoid(cols(gates, 0, H));
    Var f = sigmoid(cols(gates, H, 2 * H));
    Var g = tanh(cols(gates, 2 * H, 3 * H));
    Var o = sigmoid(cols(gates, 3 * H, 4 * H));
    at.probe("i", i);
    at.probe("f", f);
    at.probe("g", g);
    at.probe("o", o);
    Var c = f * s[1] + i * g;
    return State{o * tanh(c), c};
}

}  // namespace xtgrad
