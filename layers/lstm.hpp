// LSTM cell, PyTorch's nn.LSTM: gates in the order i, f, g, o.
#pragma once

#include "layers/cell.hpp"
#include "lib/rng.hpp"

namespace xtgrad {

// The LSTM cell with PyTorch's equations, gate order (i, f, g, o), parameter shapes and initialisation:
//   [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh
//   c' = sigmoid(f) * c + sigmoid(i) * tanh(g),   h' = sigmoid(o) * tanh(c')
class LSTMCell : public Cell {
public:
    // Parameters `<prefix>.weight_ih<suffix>` (4H x in), `weight_hh` (4H x H), `bias_ih` (4H), `bias_hh` (4H).
    LSTMCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, Rng& rng);
    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_hh.value.shape()[1]; }
    bool has_cell_state() const override { return true; }
    Var project(Var x) override;
    State step(Var x_t, const State& s) override;
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight_ih, weight_hh, bias_ih, bias_hh;
};

}  // namespace xtgrad
