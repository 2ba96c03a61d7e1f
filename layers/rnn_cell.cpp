#include <xtgrad/layers/rnn_cell.hpp>

#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

// h' = act(x_t + h W_hh^T + b_hh), x_t = x W_ih^T + b_ih from project()
StepOut RNNCell::step(const Step& at, Var x_t, const State& s) {
    Var pre = x_t + recurrent(at, s[0]);
    return State{relu ? xtgrad::relu(pre) : tanh(pre)};
}

}  // namespace xtgrad
