// LSTM cell, PyTorch's nn.LSTM: gates in the order i, f, g, o.
#pragma once

#include <xtgrad/layers/cell.hpp>

namespace xtgrad {

// The LSTM cell with PyTorch's equations, gate order (i, f, g, o), parameter shapes and initialisation
// (see GateCell, 4 gates); state parts h and c; probes "i", "f", "g", "o":
//   [i f g o] = x W_ih^T + b_ih + h W_hh^T + b_hh
//   c' = sigmoid(f) * c + sigmoid(i) * tanh(g),   h' = sigmoid(o) * tanh(c')
class LSTMCell : public GateCell {
public:
    LSTMCell(const CellSpec& spec, Rng& rng) : GateCell(spec, 4, rng) {}
    std::vector<StatePart> state_parts() const override { return {{"h", hidden_size()}, {"c", hidden_size()}}; }
    StepOut step(const Step& at, Var x_t, const State& s) override;
};

}  // namespace xtgrad
