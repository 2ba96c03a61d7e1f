// GRU cell, PyTorch's nn.GRU: gates in the order r, z, n, with r applied to (h W_hn^T + b_hn).
#pragma once

#include "layers/cell.hpp"
#include "lib/rng.hpp"

namespace xtgrad {

// The GRU cell with PyTorch's equations, gate order (r, z, n), parameter shapes and initialisation:
//   r = sigmoid(x_r + h W_hr^T + b_hr),  z = sigmoid(x_z + h W_hz^T + b_hz)
//   n = tanh(x_n + r * (h W_hn^T + b_hn)),   h' = (1 - z) * n + z * h      (x_* = x W_i*^T + b_i*)
class GRUCell : public Cell {
public:
    // Parameters `<prefix>.weight_ih<suffix>` (3H x in), `weight_hh` (3H x H), `bias_ih` (3H), `bias_hh` (3H).
    GRUCell(const std::string& prefix, const std::string& suffix, std::size_t in, std::size_t H, Rng& rng);
    std::size_t input_size() const override { return weight_ih.value.shape()[1]; }
    std::size_t hidden_size() const override { return weight_hh.value.shape()[1]; }
    Var project(Var x) override;
    State step(Var x_t, const State& s) override;
    void collect(std::vector<Parameter*>& out) override;

    Parameter weight_ih, weight_hh, bias_ih, bias_hh;
};

}  // namespace xtgrad
