// RNNLM: the PyTorch word-language-model example's model (embedding, dropout, stacked recurrent layer of any
// cell, dropout, linear decoder or adaptive softmax, optional weight tying), with its parameter names.
#pragma once

#include <memory>

#include <xtgrad/apps/lm/config.hpp>
#include <xtgrad/layers/adaptive_softmax.hpp>
#include <xtgrad/layers/dropout.hpp>
#include <xtgrad/layers/embedding.hpp>
#include <xtgrad/layers/linear.hpp>
#include <xtgrad/layers/recurrent.hpp>
#include <xtgrad/tape/ops.hpp>

namespace xtgrad {

// What a language model's forward pass over a window gives: the recurrent layer's output (y: the top features
// after output dropout, final: the state after the window) and the activation penalty to add to the training loss.
struct LMFeatures : RecurrentOutput {
    Var penalty;  // AR + TAR (AWD-LSTM) when training with alpha or beta > 0; empty otherwise
};

// encoder (Embedding) -> dropout -> rnn (Recurrent of the configured cell) -> dropout -> decoder (Linear or
// AdaptiveSoftmax): PyTorch's RNNModel. Its forward methods are virtual, so a whole model of a user's can derive
// from it and be registered by name like a cell (see Registry::add_model).
class RNNLM : public Module {
public:
    // Initialised as the example: encoder and decoder U(-0.1, 0.1), decoder bias 0, recurrent layers by their
    // cell (PyTorch's init for the built-in ones). `cell` builds each layer's cell.
    RNNLM(const LMConfig& config, const CellFactory& cell, Rng& rng);
    ~RNNLM() override = default;
    RNNLM(const RNNLM&) = delete;
    RNNLM& operator=(const RNNLM&) = delete;

    // The input vectors of ids (n x emsize): the embedding table's rows, or with a tied adaptive softmax the adaptive
    // input made of its weights; embedding dropout (whole word types) when c.training.
    Var embed(Ctx& c, const Ids& ids);
    // Every token's input vector (vocab x emsize), in token-id order.
    Array embedding_table() const;
    // Whether the inputs are the tied adaptive softmax's (adaptive input): then `encoder` is empty.
    bool adaptive_input() const;

    // A zero carried state for a batch size.
    virtual RecurrentState zero_state(std::size_t batch) const;
    // The top-layer features of a window: ids (T*batch, time-major) -> out.y (T*batch x nhid), with the state
    // after the window in out.final (take it with RecurrentState::assign). Dropout and penalties when c.training.
    virtual LMFeatures features(Ctx& c, const Ids& ids, std::size_t batch, const RecurrentState& state);
    // Full-softmax logits (n x vocab) of features h; an adaptive-softmax model has none (throws ConfigError).
    virtual Var logits(Var h);
    // The mean (or summed) cross-entropy of targets given features h: the full softmax, or the adaptive one's.
    virtual Var loss(Ctx& c, Var h, const Ids& targets, Reduction reduction = Reduction::mean);
    // Log-probabilities of the next token (n x vocab) given features h, for sampling.
    virtual Array log_probs(Ctx& c, Var h);

    void collect(std::vector<Parameter*>& out) override;
    // The weights under PyTorch's names ("decoder.weight" repeats "encoder.weight" when tied).
    void save_weights(StateDict& sd) const;
    // Loads every weight by name, checking each declared shape; ignores tensors under "optim." and "state.".
    // Throws FileError naming a missing, unexpected or mis-shaped tensor.
    void load_weights(const StateDict& sd, const std::string& context);

    LMConfig config;
    Embedding encoder;
    Recurrent rnn;
    Linear decoder;                             // the full-softmax decoder (empty with the adaptive softmax)
    std::unique_ptr<AdaptiveSoftmax> adaptive;  // the adaptive-softmax decoder, when config.cutoffs is set

private:
    // Dropout at rate p, standard or locked as configured.
    Var drop(Ctx& c, Var x, float p, std::size_t batch) const;
};

}  // namespace xtgrad
