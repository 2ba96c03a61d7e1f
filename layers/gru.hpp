// GRU cell, PyTorch's nn.GRU: gates in the order r, z, n, with r applied to (h W_hn^T + b_hn).
#pragma once

#include <xtgrad/layers/cell.hpp>

namespace xtgrad {

// The GRU cell with PyTorch's equations, gate order (r, z, n), parameter shapes and initialisation
// (see GateCell, 3 gates); probes "r", "z", "n":
//   r = sigmoid(x_r + h W_hr^T + b_hr),  z = sigmoid(x_z + h W_hz^T + b_hz)
//   n = tanh(x_n + r * (h W_hn^T + b_hn)),   h' = (1 - z) * n + z * h      (x_* = x W_i*^T + b_i*)
class GRUCell : public GateCell {
public:
    GRUCell(const CellSpec& spec, Rng& rng) : GateCell(spec, 3, rng) {}
    StepOut step(const Step& at, Var x_t, const State& s) override;
};

}  // namespace xtgrad
