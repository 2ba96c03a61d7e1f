// Recurrent: unrolls any Cell over a window, stacked and optionally bidirectional, over padded batches too.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <xtgrad/layers/cell.hpp>
#include <xtgrad/lib/rng.hpp>

namespace xtgrad {

// The built-in cells, named as in the PyTorch example's --model flag.
enum class CellType { rnn_tanh, rnn_relu, lstm, gru };

// "LSTM", "GRU", "RNN_TANH", "RNN_RELU" -> CellType; throws ConfigError naming the accepted names otherwise.
CellType parse_cell_type(const std::string& name);
// CellType -> "LSTM", "GRU", "RNN_TANH", "RNN_RELU".
std::string cell_type_name(CellType t);
// The factory of a built-in cell.
CellFactory builtin_cell(CellType t);

// Real steps per sequence of a padded batch: sequence b is real for time steps [0, lengths[b]), padding after.
using Lengths = std::vector<std::size_t>;

// What a Recurrent forward pass returns. Its Vars live on the tape: valid until the tape is cleared.
struct RecurrentOutput {
    Var y;  // (T*B x output*directions): the top layer's outputs, forward and reverse side by side; 0 on padding
    const std::vector<State>* final = nullptr;  // per cell (layer*directions + dir): the state after the window,
                                                // each sequence's last real step's
    const std::vector<Var>* top = nullptr;      // the top layer's forward-direction output at each time step
};

// The values a Recurrent layer carries from one window to the next: per cell (layer*directions + dir), one
// (B x width) array per state part. Values only: a window's graph can never reach into the previous window.
struct RecurrentState {
    std::vector<std::vector<Array>> cells;

    bool empty() const { return cells.empty(); }
    // Rows of the state (0 when empty).
    std::size_t batch() const { return cells.empty() || cells[0].empty() ? 0 : cells[0][0].shape()[0]; }
    // Takes the values of a forward pass's final states (no allocation when the shapes are unchanged).
    void assign(const RecurrentOutput& out);
};

// A stack of recurrent layers over a window of T steps stored time-major ((T*B) x features): PyTorch's
// nn.RNN / nn.LSTM / nn.GRU with dropout between layers and optional bidirectional, for any Cell. Keeps no
// per-call state: one Recurrent can run on several tapes (threads) at once.
class Recurrent : public Module {
public:
    // Layer l, direction d gets the cell make(spec) with spec.prefix = name, spec.suffix = "_l<l>[_reverse]";
    // `options` and `weight_drop` are passed to every cell.
    Recurrent(const std::string& name, const CellFactory& make, std::size_t input, std::size_t hidden,
              std::size_t layers, float dropout, bool bidirectional, Rng& rng, float weight_drop = 0.0f,
              const CellOptions& options = {});

    // Runs a window: x is (T*batch x input), time-major; `init` holds the values carried in (empty: zeros).
    // With `lengths`, sequence b is padding after lengths[b] steps: its state stays as it was, its outputs are
    // 0, the reverse direction starts at its own last real step, and its final state is its last real step's.
    // Dropout between layers draws from c.rng when c.training.
    RecurrentOutput operator()(Ctx& c, Var x, std::size_t batch, const RecurrentState& init = {},
                               const Lengths* lengths = nullptr);

    // A zero state for a batch size.
    RecurrentState zero_state(std::size_t batch) const;

    void collect(std::vector<Parameter*>& out) override;

    std::size_t input_size() const { return input_; }
    std::size_t hidden_size() const { return hidden_; }
    // Features per time step of the output: the cell's output size times the directions.
    std::size_t output_size() const { return output_ * dirs_; }
    std::size_t num_layers() const { return layers_; }
    std::size_t directions() const { return dirs_; }
    float dropout() const { return dropout_; }
    // The cell of a layer and direction.
    Cell& cell(std::size_t layer, std::size_t dir = 0) { return *cells_[layer * dirs_ + dir]; }
    // The state parts of every cell (all cells of a stack have the same).
    const std::vector<StatePart>& state_parts() const { return parts_; }

    bool locked_dropout = false;  // dropout between layers draws one mask per sequence and window (AWD-LSTM)

private:
    std::vector<std::unique_ptr<Cell>> cells_;
    std::vector<StatePart> parts_;
    std::size_t input_, hidden_, output_, layers_, dirs_;
    float dropout_;
};

// The norm of d loss / d h_t for each step, after backward: how much gradient reaches each time step (the
// vanishing-gradient measurement). Steps that received no gradient report 0.
std::vector<double> gradient_flow(const std::vector<Var>& steps);

}  // namespace xtgrad
