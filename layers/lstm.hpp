// LSTM cell, PyTorch's nn.LSTM: gates in the order i, f, g, o.
#pragma once

#include <xtgrad/layers/cell.hpp>

namespace xtgrad {

// The LSTM cell with PyTorch's equations, gate order (i, f, g, o), parameter shapes and initialisation
// (see GateCell, 4 gates):
//   [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh
//   c' = sigmoid(f) * c + sigmoid(i) * tanh(g),   h' = sigmoid(o) * tanh(c')
class LSTMCell : public GateCell {
public:
    LSTMCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, Rng& rng)
        : GateCell(prefix, suffix, 4, in, H, rng) {}
    bool has_cell_state() const override { return true; }
    State step(Var x_t, const State& s) override;
};

}  // namespace xtgrad
