// The trainer of the language-model app, built from parts a program can also use alone: the window loop
// (truncated_bptt), the Checkpointer, the MetricsWriter, an LRSchedule, the optimiser's hooks and the NanPolicy.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include <xtgrad/apps/lm/checkpoint.hpp>
#include <xtgrad/apps/lm/distributed.hpp>
#include <xtgrad/apps/lm/metrics.hpp>
#include <xtgrad/apps/lm/nan_policy.hpp>
#include <xtgrad/apps/lm/options.hpp>
#include <xtgrad/apps/lm/registry.hpp>
#include <xtgrad/tape/context.hpp>

namespace xtgrad {

// What a training run measured.
struct TrainResult {
    double best_val_loss = 0.0, test_loss = 0.0, train_seconds = 0.0, tokens_per_second = 0.0;
    std::size_t batches = 0;
    bool stopped_non_finite = false;
    bool stopped_early = false;  // --stop-after-batches was reached
};

// Trains a language model with the PyTorch example's recipe and conventions (log lines, plateau annealing, best
// model by validation loss, final test), resumable bit for bit from its resume points. Data-parallel over the
// processes of `comm` (docs/distributed.md): each holds a contiguous share of the batch's streams, gradients are
// summed while backward runs, rank 0 alone prints and writes files, and the run equals one process's.
class Trainer {
public:
    // Validates the options against the registry (the cell must be known) and the processes (the batch must be
    // divisible by them); nothing is loaded yet. comm null: one process.
    Trainer(const TrainOptions& options, const Registry& registry, std::ostream& log, Comm* comm = nullptr);
    ~Trainer();
    // Loads the data, builds or resumes the model, trains, evaluates on the test split.
    TrainResult run();

private:
    void say(const std::string& s);
    void load_data();
    void start();                 // a new model, or the resume point's
    bool run_epoch();             // false: the run stopped (NaN, --stop-after-batches)
    bool end_epoch(double epoch_seconds);
    void log_interval(std::size_t batch, std::size_t nbatches);
    void save_resume();
    void final_test();
    std::size_t variable_window();                 // AWD-LSTM's random window length
    void update_progress(std::size_t batches_done, double clock);  // for a schedule that follows the run's progress
    double run_clock();                            // the run's elapsed time as rank 0 reads it (collective)
    void start_processes();                        // data-parallel: rank 0's weights and state everywhere, checked

    struct State;
    TrainOptions o_;
    const Registry& registry_;
    std::ostream& log_;
    std::unique_ptr<State> s_;
    SerialComm serial_;  // comm_ when none was given
    Comm& comm_;
};

}  // namespace xtgrad
