// RNNLM: the PyTorch word-language-model example's model (embedding, dropout, stacked RNN/LSTM/GRU, dropout,
// linear decoder, optional weight tying), with its parameter names, so weights move between the two.
#pragma once

#include <memory>

#include <xtgrad/layers/adaptive_softmax.hpp>
#include <xtgrad/layers/dropout.hpp>
#include <xtgrad/layers/embedding.hpp>
#include <xtgrad/layers/linear.hpp>
#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/lib/state_dict.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

// The architecture of an RNNLM.
struct LMConfig {
    std::string model = "LSTM";  // LSTM, GRU, RNN_TANH, RNN_RELU
    std::size_t vocab = 0, emsize = 200, nhid = 200, nlayers = 2;
    float dropout = 0.2f;
    bool tied = false;
    std::vector<std::size_t> cutoffs;        // adaptive softmax cluster boundaries (empty: full softmax)
    float div_value = 4.0f;                  // adaptive softmax: projection i has nhid / div^(i+1) features
    std::vector<std::int32_t> order;         // adaptive softmax: token id -> frequency rank

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
    // Full softmax only (an adaptive-softmax model has no logit matrix: use loss() and log_probs()).
    Var operator()(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state, Rng& rng, bool training);
    // The mean (or summed) cross-entropy of targets: the full softmax, or the adaptive softmax's.
    Var loss(Tape& t, const Ids& ids, const Ids& targets, std::size_t batch, RecurrentState& state, Rng& rng,
             bool training, Reduction reduction = Reduction::mean);
    // Log-probabilities of the next token after each input (T*batch x vocab), for sampling.
    Array log_probs(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state);

    void collect(std::vector<Parameter*>& out) override;
    // The weights under PyTorch's names ("decoder.weight" repeats "encoder.weight" when tied).
    void save_weights(StateDict& sd) const;
    // Loads every weight by name, checking each declared shape; ignores tensors under "optim." and "state.".
    // Throws FileError naming a missing, unexpected or mis-shaped tensor.
    void load_weights(const StateDict& sd, const std::string& context);

    LMConfig config;
    Embedding encoder;
    Recurrent rnn;
    Linear decoder;                             // the full-softmax decoder (unused with adaptive softmax)
    std::unique_ptr<AdaptiveSoftmax> adaptive;  // the adaptive-softmax decoder, when config.cutoffs is set
    Dropout drop;

private:
    Var top(Tape& t, const Ids& ids, std::size_t batch, RecurrentState& state, Rng& rng, bool training);
};

}  // namespace xtgrad
