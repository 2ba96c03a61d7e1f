// Truncated backpropagation through time: a long sequence, window by window, gradient cut at each boundary.
#pragma once

#include <functional>

#include <xtgrad/tape/tape.hpp>

namespace xtgrad {

// Records a window's loss on a cleared tape: steps [t0, t1) of the sequence.
using WindowLoss = std::function<Var(Tape& tape, std::size_t t0, std::size_t t1)>;
// Called after each window's backward pass (typically: clip, optimiser step, zero_grad).
using WindowUpdate = std::function<void(std::size_t window_index, float loss)>;

// Runs a sequence of `length` steps in windows of `window` steps (the last one shorter): for each window it
// clears the tape, records loss(tape, t0, t1), runs backward and calls update. Recurrent state travels between
// windows only as values (Recurrent's RecurrentState), so no gradient can cross a boundary, and the tape's
// memory is the same for every window. Returns the step-weighted mean loss.
double truncated_bptt(Tape& tape, std::size_t length, std::size_t window, const WindowLoss& loss,
                      const WindowUpdate& update);

}  // namespace xtgrad
