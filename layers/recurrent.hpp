// Recurrent: unrolls any Cell over a window, stacked and optionally bidirectional, carrying state as values.
#pragma once

#include <functional>
#include <memory>

#include <xtgrad/layers/cell.hpp>
#include <xtgrad/lib/rng.hpp>

namespace xtgrad {

// The built-in cells, named as in the PyTorch example's --model flag.
enum class CellType { rnn_tanh, rnn_relu, lstm, gru };

// "LSTM", "GRU", "RNN_TANH", "RNN_RELU" -> CellType; throws ConfigError naming the accepted names otherwise.
CellType parse_cell_type(const std::string& name);
// CellType -> "LSTM", "GRU", "RNN_TANH", "RNN_RELU".
std::string cell_type_name(CellType t);

// Builds the cell of one layer and direction: parameter names are `<prefix>.weight_ih<suffix>`..., where
// suffix is `_l0`, `_l1_reverse`, ... as in PyTorch.
using CellFactory = std::function<std::unique_ptr<Cell>(const std::string& prefix, const std::string& suffix,
                                                        std::size_t in, std::size_t H, Rng& rng)>;

// The factory of a built-in cell.
CellFactory builtin_cell(CellType t);

// The carried state of a Recurrent layer: one StateValues per layer and direction (index layer*dirs + dir).
// Values only: a window's graph can never reach into the previous window.
struct RecurrentState {
    std::vector<StateValues> cells;
    bool empty() const { return cells.empty(); }
};

// A stack of recurrent layers over a window of T steps stored time-major ((T*B) x features): PyTorch's
// nn.RNN / nn.LSTM / nn.GRU with dropout between layers and optional bidirectional.
class Recurrent : public Module {
public:
    Recurrent(const std::string& name, const CellFactory& make, std::size_t input, std::size_t hidden,
              std::size_t layers, float dropout, bool bidirectional, Rng& rng);

    // Runs a window: x is (T*batch x input), time-major. `state` holds the values carried in (zeros when empty)
    // and receives the final values. Dropout between layers uses rng when training.
    // -> (T*batch x hidden*directions), each row the top layer's h (forward and reverse side by side).
    Var operator()(Var x, std::size_t batch, RecurrentState& state, Rng& rng, bool training);

    // A zero state for a batch size.
    RecurrentState zero_state(std::size_t batch) const;

    // The top layer's forward-direction h_t for each step of the last call (valid until the tape is cleared):
    // what gradient_flow() measures.
    const std::vector<Var>& top_steps() const { return top_steps_; }

    void collect(std::vector<Parameter*>& out) override;

    std::size_t input_size() const { return input_; }
    std::size_t hidden_size() const { return hidden_; }
    std::size_t num_layers() const { return layers_; }
    std::size_t directions() const { return dirs_; }
    float dropout() const { return dropout_; }
    // The cell of a layer and direction.
    Cell& cell(std::size_t layer, std::size_t dir = 0) { return *cells_[layer * dirs_ + dir]; }

private:
    std::vector<std::unique_ptr<Cell>> cells_;
    std::size_t input_, hidden_, layers_, dirs_;
    float dropout_;
    std::vector<Var> steps_, top_steps_, join_;  // reused across calls: no allocation in steady state
};

// The norm of d loss / d h_t for each step, after backward: how much gradient reaches each time step (the
// vanishing-gradient measurement). Steps that received no gradient report 0.
std::vector<double> gradient_flow(const std::vector<Var>& steps);

}  // namespace xtgrad
