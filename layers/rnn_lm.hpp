// RNNLM: the PyTorch word-language-model example's model (embedding, dropout, stacked RNN/LSTM/GRU, dropout,
// linear decoder, optional weight tying), with its parameter names, so weights move between the two.
#pragma once

#include "layers/dropout.hpp"
#include "layers/embedding.hpp"
#include "layers/linear.hpp"
#include "layers/recurrent.hpp"
#include "lib/state_dict.hpp"

namespace xtgrad {

// The architecture of an RNNLM.
struct LMConfig {
    std::string model = "LSTM";  // LSTM, GRU, RNN_TANH, RNN_RELU
    std::size_t vocab = 0, emsize = 200, nhid = 200, nlayers = 2;
    float dropout = 0.2f;
    bool tied = false;

    // Throws ConfigError naming the first setting out of range.
    void validate() const;
    // Writes the settings as metadata ("model", "emsize", ...), and reads them back (throws FileError).
    void save(StateDict& sd) const;
    static LMConfig load(const StateDict& sd, const std::string& context);
    // Infers the architecture of a plain PyTorch state dict from its tensor names and shapes; `model_hint`
    // settles RNN_TANH vs RNN_RELU (it is otherwise read from the shapes). Throws FileError naming what is missing.
    static LMConfig infer(const StateDict& sd, const std::string& model_hint, const std::string& context);
    // "LSTM 2x200, emsize 200, vocab 33278, dropout 0.2"
    std::string describe() const;
};

// encoder (Embedding) -> dropout -> rnn (Recurrent) -> dropout -> decoder (Linear), PyTorch's RNNModel.
class RNNLM : public Module {
public:
    // Initialised as the example: encoder and decoder U(-0.1, 0.1), decoder bias 0, recurrent layers as PyTorch.
    // A custom cell factory replaces the built-in cell named by config.model.
    RNNLM(const LMConfig& config, Rng& rng, const CellFactory& custom_cell = nullptr);

    // ids: T*batch token ids, time-major -> logits (T*batch x vocab). Carries `state` (values) across calls.
    Var operator()(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state, Rng& rng, bool training);

    void collect(std::vector<Parameter*>& out) override;
    // The weights under PyTorch's names ("decoder.weight" repeats "encoder.weight" when tied).
    void save_weights(StateDict& sd) const;
    // Loads every weight by name, checking each declared shape; ignores tensors under "optim." and "state.".
    // Throws FileError naming a missing, unexpected or mis-shaped tensor.
    void load_weights(const StateDict& sd, const std::string& context);

    LMConfig config;
    Embedding encoder;
    Recurrent rnn;
    Linear decoder;
    Dropout drop;
};

}  // namespace xtgrad
