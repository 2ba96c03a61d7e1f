// Checkpoints of the language-model app: model files (weights under PyTorch's names, the cell's registered
// name, configuration and vocabulary) and resume points (everything needed to continue a run bit for bit).
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <xtgrad/apps/lm/data.hpp>
#include <xtgrad/apps/lm/options.hpp>
#include <xtgrad/apps/lm/registry.hpp>
#include <xtgrad/lib/rng.hpp>
#include <xtgrad/optim/optimizer.hpp>
#include <xtgrad/optim/schedule.hpp>

namespace xtgrad {

// Where a training run stands: with the optimiser and schedule, enough to continue bit for bit.
struct TrainProgress {
    std::size_t epoch = 1;          // the epoch in progress (1-based)
    std::size_t batch = 0;          // batches of that epoch already done
    std::size_t position = 0;       // the data row the next window starts at
    std::size_t total_batches = 0;  // batches done over the whole run
    Rng::State rng{};               // dropout generator
    std::string run_id;             // names the run: every file it writes carries it
    bool best_written = false;      // the run has written its best model file
    double best_val = std::numeric_limits<double>::infinity();  // the best validation loss so far
    double elapsed = 0.0;           // seconds the run has taken so far (for --time-budget)
};

// Writes a model file atomically: weights, the configuration (with the registered cell name), vocabulary and
// level, the run's id, and (optionally) the options of the run as JSON for reports.
void save_model(const std::string& path, const RNNLM& model, const Vocab& vocab, const std::string& level,
                const std::string& run_id = "", const std::string& options_json = "");

// A model loaded from a file: an xtgrad checkpoint, or a plain PyTorch state dict (architecture inferred from
// names and shapes, built-in cells only, vocabulary rebuilt from data).
struct LoadedModel {
    std::unique_ptr<RNNLM> model;
    Vocab vocab;
    std::string level = "word";
    StateDict sd;
    bool from_pytorch = false;
};

// Loads a model through the program's registry; `vocab_from` supplies the vocabulary for a plain PyTorch file;
// `cell_hint` (--model) must agree with the file's cell. Throws FileError naming the file and what is wrong
// (a cell the program does not know: both names).
LoadedModel load_model(const std::string& path, const Registry& registry, const Corpus* vocab_from,
                       const std::string& cell_hint);
// As above, from a file's contents already decoded (`name`, the file, for messages).
LoadedModel load_model(StateDict sd, const std::string& name, const Registry& registry, const Corpus* vocab_from,
                       const std::string& cell_hint);

// A resume point read back: the run's options and progress, its optimiser/schedule state (in sd) and hidden state.
struct ResumePoint {
    TrainOptions options;
    TrainProgress progress;
    StateDict sd;  // the whole file (weights, optimiser and schedule state are read from it)
};

// Reads the options and progress of a resume point (the model is loaded with load_model). Throws FileError for a
// file without a training state, naming it.
ResumePoint read_resume_point(const std::string& path);
// As above, from a file's contents already decoded (`name`, the file, for messages).
ResumePoint read_resume_point(StateDict sd, const std::string& name);

// The hidden state recorded in a resume point, checked against the model and batch size.
RecurrentState read_hidden_state(const StateDict& sd, const RNNLM& model, std::size_t batch, const std::string& path);

// The three files of a run that saves to `save`: the best model, SAVE.resume.safetensors (the resume point) and
// SAVE.metrics.jsonl; every write atomic.
class Checkpointer {
public:
    explicit Checkpointer(const std::string& save);
    const std::string& best_path() const { return best_; }
    const std::string& resume_path() const { return resume_; }
    const std::string& metrics_path() const { return metrics_; }
    // Throws ConfigError when a file of the run exists and is not this run's (another run's model would be lost),
    // naming it; `run_id` empty: a new run, which owns nothing yet.
    void check_owned(const std::string& run_id) const;
    // Writes the best model.
    void save_best(const RNNLM& model, const Vocab& vocab, const std::string& level, const std::string& run_id,
                   const std::string& options_json) const;
    // Writes a resume point.
    void save_resume(const RNNLM& model, const Vocab& vocab, const std::string& level, const TrainOptions& options,
                     const Optimizer& opt, const LRSchedule& schedule, const TrainProgress& progress,
                     const RecurrentState& hidden) const;
    // The run's checkpoints (best model, resume point) that exist now, for messages.
    std::vector<std::string> existing() const;

private:
    std::string best_, resume_, metrics_;
};

// The save path a resume point belongs to: X.resume.safetensors -> X.safetensors (else empty).
std::string save_path_of_resume(const std::string& resume);

// A fresh run id: 16 hex digits from the clock and the process.
std::string new_run_id();

}  // namespace xtgrad
