// Truncated backpropagation through time: a long sequence, window by window, gradient cut at each boundary.
#pragma once

#include <cstddef>
#include <functional>

#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// One window of a truncated-BPTT run, as the hooks see it.
struct WindowInfo {
    std::size_t index = 0;  // windows started before this one (counting from the run's first_index)
    std::size_t t0 = 0;     // first step of the window
    std::size_t t1 = 0;     // one past its last step
    float loss = 0.0f;      // the window's loss (after loss() ran)
};

// What truncated_bptt does with each window.
struct WindowHooks {
    // Records the loss of steps [t0, t1) on the cleared tape (required): a (1 x 1) Var.
    std::function<Var(Tape& tape, const WindowInfo& w)> loss;
    // After backward (clip, optimiser step, zero_grad, logging); returns false to stop after this window.
    // Unset: nothing is done and the run goes on.
    std::function<bool(const WindowInfo& w)> update;
    // When the loss is NaN or Inf (backward is not run): returns true to skip the window and go on, false to stop.
    // Unset: stop.
    std::function<bool(const WindowInfo& w)> non_finite;
    // The number of steps of the window starting at t0 (variable-length BPTT); unset: the fixed window.
    std::function<std::size_t(std::size_t t0)> length;
    // Data-parallel training: the whole batch's loss from this process's (a reduction over the processes), so that
    // every process sees the same WindowInfo::loss and decides alike (finite or not, stop or go on). Unset: the
    // process's own loss.
    std::function<float(float loss)> global_loss;
};

// What a truncated-BPTT run did.
struct TbpttResult {
    double mean_loss = 0.0;   // step-weighted mean of the finite window losses
    std::size_t windows = 0;  // windows whose backward ran
    std::size_t next = 0;     // the step the next window would start at (t_end when the run finished)
    bool stopped = false;     // a hook stopped the run before t_end
    bool non_finite = false;  // the run stopped on a NaN or Inf loss
};

// Runs steps [t_begin, t_end) in windows of `window` steps (or hooks.length(t0); the last one shorter): for each
// window it clears the tape, records hooks.loss (combined by hooks.global_loss), checks that the loss is finite,
// runs backward and calls hooks.update. Recurrent state travels between windows only as values (RecurrentState),
// so no gradient can cross a boundary, and the tape's memory is the same for every window. `first_index` numbers
// the first window.
TbpttResult truncated_bptt(Tape& tape, std::size_t t_begin, std::size_t t_end, std::size_t window,
                           const WindowHooks& hooks, std::size_t first_index = 0);

// Records a window's loss on a cleared tape: steps [t0, t1) of the sequence.
using WindowLoss = std::function<Var(Tape& tape, std::size_t t0, std::size_t t1)>;
// Called after each window's backward pass (typically: clip, optimiser step, zero_grad).
using WindowUpdate = std::function<void(std::size_t window_index, float loss)>;

// The plain form: all of [0, length) in fixed windows, stopping on a non-finite loss; returns the step-weighted
// mean loss.
double truncated_bptt(Tape& tape, std::size_t length, std::size_t window, const WindowLoss& loss,
                      const WindowUpdate& update);

}  // namespace xtgrad
