// What training does when a number stops being finite: the training loss, the gradient norm, the validation loss.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace xtgrad {

// The NaN policy of a training run. A non-finite training loss or gradient norm skips that window (no update) up
// to `skip_limit` windows in a row, then stops the run; a non-finite validation loss always stops it, before the
// schedule, the best model or the resume point can take it in. A stopped run keeps the files it had written.
class NanPolicy {
public:
    // Where a non-finite value was seen.
    enum class Where { train_loss, grad_norm, valid_loss };

    // skip_limit 0: stop at the first non-finite value.
    explicit NanPolicy(std::size_t skip_limit = 0) : limit_(skip_limit) {}
    // A window trained normally: resets the count of windows skipped in a row.
    void ok() { in_a_row_ = 0; }
    // A non-finite value: returns true when the window is skipped and training goes on, false when it stops.
    bool tolerate(Where where);
    // Windows skipped so far in the run.
    std::size_t skipped() const { return skipped_; }
    // The message for stopping: what became non-finite and where, and which of the run's files are kept (only
    // those that exist).
    static std::string stop_message(Where where, double value, std::size_t epoch, std::size_t batch,
                                    const std::vector<std::string>& kept);

private:
    std::size_t limit_, in_a_row_ = 0, skipped_ = 0;
};

}  // namespace xtgrad
