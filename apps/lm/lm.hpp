// The pieces of xtgrad-lm: locating data, evaluation, training and sampling, callable from tests.
#pragma once

#include <iosfwd>
#include <string>

#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/lib/corpus.hpp>

namespace xtgrad {

// Everything `xtgrad-lm train` is told.
struct TrainOptions {
    std::string data, level = "word", optimizer = "sgd", save = "model.safetensors", init, resume;
    LMConfig model;
    double lr = 20.0, clip = 0.25, momentum = 0.0, weight_decay = 0.0;
    std::size_t epochs = 40, batch_size = 20, eval_batch_size = 10, bptt = 35, log_interval = 200, max_batches = 0,
                eval_max_batches = 0, checkpoint_interval = 1000;
    std::size_t stop_after = 0;  // stop after this many batches in all (0: never), leaving a resume point there
    std::uint64_t seed = 1111;
    bool quiet = false;
};

// What a training run measured.
struct TrainResult {
    double best_val_loss = 0.0, test_loss = 0.0, train_seconds = 0.0, tokens_per_second = 0.0;
    std::size_t batches = 0;
    bool stopped_non_finite = false;
    bool stopped_early = false;  // --stop-after-batches was reached
};

// The data directory: `given` when not empty, else ../shared/data/<name> next to the working directory or the
// program. Throws ConfigError saying how to get the data when nothing is found.
std::string find_data(const std::string& given, const std::string& name);

// Loads a corpus at a level ("word" or "char").
Corpus load_corpus(const std::string& data, const std::string& level);

// Mean per-token cross-entropy of a model over a batchified split, as the example computes it
// (sum over windows of len * mean loss, divided by steps - 1); max_batches > 0 stops early.
double evaluate(RNNLM& model, const Batched& data, std::size_t bptt, std::size_t max_batches = 0);

// Runs `xtgrad-lm train`: the example's recipe (SGD, clipping, lr/4 on plateau, best model saved), with the
// resume checkpoint `<save stem>.resume.safetensors` and metrics `<save stem>.metrics.jsonl`.
TrainResult train(const TrainOptions& opt, std::ostream& log);

// The resume checkpoint and metrics paths that go with a --save path.
std::string resume_path(const std::string& save);
std::string metrics_path(const std::string& save);

}  // namespace xtgrad
