// Dropout layers: standard, and variational (locked) dropout that shares one mask across a window's steps.
#pragma once

#include <xtgrad/tape/context.hpp>

namespace xtgrad {

// Inverted dropout with rate p when training; the identity when not (or when p = 0).
class Dropout {
public:
    explicit Dropout(float p);
    // y = x * mask / (1 - p) when c.training, else x: x is a window of T steps stacked time-major, (T*batch x H),
    // and the mask a function of one draw from c.rng and each row's stream in the whole batch (c.row_offset,
    // c.global_batch), so that a batch split between processes is dropped as one process drops it.
    Var operator()(Ctx& c, Var x, std::size_t batch) const;
    // The same with every row its own (a value that is not split by streams); in a data-parallel context
    // (c.sharded()) it throws ConfigError asking for the batch.
    Var operator()(Ctx& c, Var x) const;
    float rate() const { return p_; }

private:
    float p_;
};

// Variational ("locked") dropout: x is a window of T steps stacked time-major, (T*batch x H); one (batch x H)
// mask is drawn per call and applied to every step, as in AWD-LSTM, row b keyed by its stream in the whole batch.
class LockedDropout {
public:
    explicit LockedDropout(float p);
    // y[t*batch + b, :] = x[t*batch + b, :] * mask[b, :] when c.training, else x
    Var operator()(Ctx& c, Var x, std::size_t batch) const;
    float rate() const { return p_; }

private:
    float p_;
};

}  // namespace xtgrad
