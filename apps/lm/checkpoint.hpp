// Checkpoints of xtgrad-lm: weights under PyTorch's names plus, in the same atomic file, everything needed to
// resume exactly (config, vocabulary, optimiser, schedule, generator, data position, carried hidden state).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <xtgrad/layers/rnn_lm.hpp>
#include <xtgrad/lib/corpus.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/optim/schedule.hpp>

namespace xtgrad {

// Where a training run stands: enough, with the optimiser and schedule, to continue bit for bit.
struct TrainProgress {
    std::size_t epoch = 1;          // the epoch in progress (1-based)
    std::size_t batch = 0;          // batches of that epoch already done
    std::size_t total_batches = 0;  // batches done over the whole run
    std::uint64_t seed = 0;
    Rng::State rng{};               // dropout generator
};

// The training state a resume checkpoint holds besides the model.
struct ResumeState {
    TrainProgress progress;
    std::string optimizer;  // optimiser name
    StateDict sd;           // the whole file (optimizer and schedule state are read from it)
    RecurrentState hidden;  // carried hidden state at that batch
};

// Writes a checkpoint atomically: weights and config, vocabulary and level; with `progress`, also the optimiser,
// the schedule, the progress and the carried hidden state, so that training can resume exactly.
void save_checkpoint(const std::string& path, const RNNLM& model, const Vocab& vocab, const std::string& level,
                     const Optimizer* opt = nullptr, const PlateauLR* plateau = nullptr,
                     const TrainProgress* progress = nullptr, const RecurrentState* hidden = nullptr);

// A model loaded from a file: an xtgrad checkpoint (config and vocabulary from its metadata) or a plain
// PyTorch state dict (architecture inferred from names and shapes, vocabulary rebuilt from data).
struct LoadedModel {
    std::unique_ptr<RNNLM> model;
    Vocab vocab;
    std::string level = "word";
    StateDict sd;
    bool from_pytorch = false;
};

// Loads a model; `vocab_from` supplies the vocabulary for a plain PyTorch file (empty: error), `model_hint`
// settles RNN_TANH vs RNN_RELU. Every error names the file and what is wrong.
LoadedModel load_model(const std::string& path, const Corpus* vocab_from, const std::string& model_hint);

// Reads the training state of a resume checkpoint; throws FileError when the file has none.
ResumeState load_resume_state(const StateDict& sd, const RNNLM& model, std::size_t batch, const std::string& path);

}  // namespace xtgrad
