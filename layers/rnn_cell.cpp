#include "layers/rnn_cell.hpp"

#include "tape/ops.hpp"

namespace xtgrad {

RNNCell::RNNCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, bool use_relu,
                 Rng& rng)
    : relu(use_relu) {
    init_recurrent_params(weight_ih, weight_hh, bias_ih, bias_hh, prefix, suffix, 1, in, H, rng);
}

// x W_ih^T + b_ih for the whole window
Var RNNCell::project(Var x) { return affine(x, x.tape->param(weight_ih), x.tape->param(bias_ih)); }

// h' = act(x_t + h W_hh^T + b_hh)
State RNNCell::step(Var x_t, const State& s) {
    Tape& t = *x_t.tape;
    Var pre = x_t + affine(s.h, t.param(weight_hh), t.param(bias_hh));
    return {relu ? xtgrad::relu(pre) : tanh(pre), {}};
}

void RNNCell::collect(std::vector<Parameter*>& out) {
    out.insert(out.end(), {&weight_ih, &weight_hh, &bias_ih, &bias_hh});
}

}  // namespace xtgrad
